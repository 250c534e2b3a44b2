"""`socialgate audit search | report | stats`: the investigators' commands.

Logs are positional arguments (default: every audit log in logs/, the same
files `audit verify` checks: see `audit/files.py`); several workers' files
and rotated series are merged in time order. Damaged lines are warned about
on stderr as ``file:line: message`` and skipped; the exit status stays 0
(zero matches is also 0).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pathlib
import shutil
import sys
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import click

from proxy_addons.cli.audit_drift import warn_drift
from proxy_addons.cli.common import configured_logs, policy_option, settings
from proxy_addons.errors import ConfigError
from proxy_addons.investigate import report as report_mod
from proxy_addons.investigate import search as search_mod
from proxy_addons.investigate import stats as stats_mod
from proxy_addons.investigate.filters import OUTCOMES, make_criteria
from proxy_addons.investigate.progress import StderrConsole
from proxy_addons.investigate.read import LogReader, Prefilter
from proxy_addons.investigate.timeparse import Period, parse_zone, period
from proxy_addons.paths import DEFAULT_KEY, DEFAULT_SEED
from proxy_addons.policy.model import Policy


def _common[C: Callable[..., Any]](f: C) -> C:
    """Options every investigation command takes: period, time zone, policy, logs."""
    for decorator in reversed(
        [
            click.option("--since", metavar="WHEN", help="From (ISO date/time, or age like 30d)."),
            click.option(
                "--until", metavar="WHEN", help="Until, exclusive; a bare date includes that day."
            ),
            click.option(
                "--tz",
                "tz_name",
                metavar="ZONE",
                help="Time zone for display and for dates typed (default: the policy's, else UTC).",
            ),
            policy_option,
            click.argument(
                "logs", nargs=-1, type=click.Path(dir_okay=False, path_type=pathlib.Path)
            ),
        ]
    ):
        f = decorator(f)
    return f


def console_note(message: str) -> None:
    click.echo(f"note: {message}", err=True)


def _load_policy(path: str, *, required: bool) -> Policy | None:
    """The policy; None when not required and the file is absent (unless named by --policy).

    Investigators work from a case folder of copied logs and keys: the policy only adds
    group names and exemption details."""
    ctx = click.get_current_context()
    explicit = ctx.get_parameter_source("policy_path") is not click.core.ParameterSource.DEFAULT
    if not required and not explicit and not pathlib.Path(path).exists():
        return None
    from proxy_addons.errors import PolicyError
    from proxy_addons.policy.load import load_policy

    try:
        return load_policy(path)
    except PolicyError as e:
        if required or explicit:
            raise
        console_note(f"policy not used: {e}")
        return None


def _zone(tz_name: str | None, policy: Policy | None) -> tuple[dt.tzinfo, str]:
    if tz_name:
        zone = parse_zone(tz_name)
    elif policy is not None:
        zone = policy.timezone
    else:
        zone = ZoneInfo("UTC")
    return zone, zone.key


def _logs(logs: tuple[pathlib.Path, ...]) -> list[pathlib.Path]:
    return list(logs) if logs else configured_logs()


def _reader(
    logs: tuple[pathlib.Path, ...], when: Period, prefilter: Prefilter, console: StderrConsole
) -> LogReader:
    return LogReader(
        _logs(logs),
        period=when,
        prefilter=prefilter,
        on_problem=lambda p: console.warn(f"warning: {p}"),
        progress_factory=console.progress,
    )


@contextlib.contextmanager
def _quiet_broken_pipe() -> Iterator[None]:
    """`search … | head` closes the pipe early: that is a normal end, not an error."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _at_least_two(value: int | None) -> int | None:
    if value is not None and value < 2:
        raise ConfigError(f"--suppress-below: {value} must be 2 or more")
    return value


def _filter(flag: str, dest: str, metavar: str, help_text: str) -> Callable[[Any], Any]:
    """A repeatable search criterion: a record matches any of the values given."""
    return click.option(flag, dest, multiple=True, metavar=metavar, help=help_text)


def register(group: click.Group) -> None:
    """Add `search`, `report` and `stats` to the `audit` group."""
    for command in (search, report, stats):
        group.add_command(command)


@click.command("search")
@_filter("--user", "users", "USER", "User name.")
@_filter("--group", "groups", "GROUP", "Group (policy or record).")
@_filter("--site", "sites", "DOMAIN", "Site; a domain matches its subdomains.")
@_filter("--category", "categories", "NAME", "Category.")
@click.option("--outcome", "outcomes", multiple=True, type=click.Choice(OUTCOMES))
@_filter("--reason", "reasons", "REASON", "e.g. no-exemption, expired, outside-schedule.")
@_filter("--exemption", "exemptions", "ID", "Exemption id.")
@click.option(
    "--format", "fmt", type=click.Choice(search_mod.FORMATS), default="table", show_default=True
)
@_common
def search(
    logs: tuple[pathlib.Path, ...],
    since: str | None,
    until: str | None,
    tz_name: str | None,
    policy_path: str,
    users: tuple[str, ...],
    groups: tuple[str, ...],
    sites: tuple[str, ...],
    categories: tuple[str, ...],
    outcomes: tuple[str, ...],
    reasons: tuple[str, ...],
    exemptions: tuple[str, ...],
    fmt: str,
) -> None:
    """Search the audit trail; JSON output is the original lines, unchanged."""
    need_policy = bool(groups) or not tz_name
    policy = _load_policy(policy_path, required=bool(groups)) if need_policy else None
    zone, zone_name = _zone(tz_name, policy)
    criteria = make_criteria(
        users=users,
        groups=groups,
        group_members=policy.groups if policy is not None else None,
        sites=sites,
        categories=categories,
        outcomes=outcomes,
        reasons=reasons,
        exemptions=exemptions,
    )
    when = period(since, until, zone)
    console = StderrConsole()
    reader = _reader(logs, when, criteria.prefilter(), console)
    matching = (e for e in reader if criteria.matches(e.record))
    with _quiet_broken_pipe():
        if fmt == "json":
            sys.stdout.flush()
            search_mod.write_json(sys.stdout.buffer, matching)
            sys.stdout.buffer.flush()
        elif fmt == "csv":
            search_mod.write_csv(sys.stdout, matching, zone, reader.names)
        else:
            width = shutil.get_terminal_size((120, 24)).columns
            n = search_mod.write_table(sys.stdout, matching, zone, width, zone_name)
            sys.stdout.flush()
            console.warn(
                f"{n} record(s) matched; {reader.lines_read} line(s) read from "
                f"{len(reader.names)} file(s), {len(reader.problems)} problem(s)"
            )


@click.command("stats")
@click.option("--by", type=click.Choice(stats_mod.BY), help="One row per value of this field.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("table", "csv", "json")),
    default="table",
    show_default=True,
)
@click.option(
    "--suppress-below",
    type=int,
    metavar="N",
    callback=lambda _c, _p, v: _at_least_two(v),
    help="Withhold counts from 1 to N-1 (e.g. 5) in published figures.",
)
@_common
def stats(
    logs: tuple[pathlib.Path, ...],
    since: str | None,
    until: str | None,
    tz_name: str | None,
    policy_path: str,
    by: str | None,
    fmt: str,
    suppress_below: int | None,
) -> None:
    """Aggregate counts: blocked attempts, allowed requests, users, exemption holders
    (and a warning on stderr if workers ran different policies at the same time)."""
    policy = _load_policy(policy_path, required=False)
    zone, zone_name = _zone(tz_name, policy)
    when = period(since, until, zone)
    console = StderrConsole()
    reader = _reader(logs, when, Prefilter(), console)
    result = stats_mod.compute(reader, by, zone, policy, when)
    data = stats_mod.to_json(result, when, zone_name, suppress_below, len(reader.problems))
    with _quiet_broken_pipe():
        stats_mod.write(sys.stdout, data, fmt)
    warn_drift(_logs(logs))


@click.command("report")
@click.option("--user", required=True, metavar="USER", help="The person investigated.")
@click.option(
    "--html",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    metavar="OUT",
    help="Write the HTML report here.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("json",)),
    help="json: print the report's numbers and events on stdout.",
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    help=f"Chain key for the integrity check (default: the configured one, else {DEFAULT_KEY}, "
    "if present).",
)
@click.option(
    "--checkpoints",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    help="Signed checkpoints file for the integrity check.",
)
@_common
def report(
    logs: tuple[pathlib.Path, ...],
    since: str | None,
    until: str | None,
    tz_name: str | None,
    policy_path: str,
    user: str,
    html: pathlib.Path | None,
    fmt: str | None,
    key: pathlib.Path | None,
    checkpoints: pathlib.Path | None,
) -> None:
    """One person's activity: a self-contained HTML case-file report, or the same as JSON."""
    if html is None and fmt != "json":
        raise click.UsageError("give --html OUT (the HTML report) and/or --format json")
    policy = _load_policy(policy_path, required=False)
    if policy is None:
        console_note("no policy given (--policy): the report is built from the records alone")
    zone, zone_name = _zone(tz_name, policy)
    when = period(since, until, zone)
    paths = _logs(logs)
    if key is None and pathlib.Path(settings().key).exists():
        key = pathlib.Path(settings().key)
    seed = pathlib.Path(DEFAULT_SEED)  # a case folder's copy of the verification seed
    integrity = report_mod.check_integrity(paths, key, checkpoints, seed if seed.exists() else None)
    console = StderrConsole()
    criteria = make_criteria(users=(user,))
    reader = _reader(tuple(paths), when, criteria.prefilter(), console)
    data = report_mod.build(
        (e for e in reader if criteria.matches(e.record)),
        user=user,
        policy=policy,
        period=when,
        tz=zone,
        tz_name=zone_name,
        files=reader.names,
        problems=reader.problems,
        integrity=integrity,
    )
    if html is not None:
        report_mod.write_atomic(html, report_mod.render_html(data))
        console.warn(
            f"report written to {html}: {data['totals']['accesses']} access(es), "
            f"{data['integrity']['message']}"
        )
    if fmt == "json":
        with _quiet_broken_pipe():
            json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
            sys.stdout.write("\n")
