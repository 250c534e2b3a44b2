"""`socialgate audit purge`: delete rotated audit files past the retention period.

A signed ``purge`` record goes to the admin chain first, naming every file removed (SHA-256,
seq range) and where each purged chain continues; `audit verify` proves the rest from there
and reports the purge as a note. Live files are never deleted. Exit 0 done (or nothing to
do), 2 bad usage or a trail it must not touch (a damaged file, a gap: run verify).
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import pathlib

import click

from proxy_addons.audit import purge as purging
from proxy_addons.audit.append import append_records
from proxy_addons.audit.files import series
from proxy_addons.audit.record import purge_record
from proxy_addons.cli.common import configured_logs, seal_dir, settings
from proxy_addons.errors import ConfigError
from proxy_addons.investigate.timeparse import parse_when


def _cutoff(option: str, value: str, now: dt.datetime) -> dt.datetime:
    """DATE (ISO, UTC like the trail, unless an offset is given) or an age like 400d."""
    when = parse_when(option, value, dt.UTC, now, end=False)
    if when > now:
        raise ConfigError(f"{option} {value}: in the future; nothing newer than now is purged")
    return when


def register(group: click.Group) -> None:
    """Add ``purge`` to the `audit` group."""

    @group.command("purge")
    @click.option(
        "--before", required=True, metavar="DATE",
        help="Delete rotated files whose every record is older: ISO date/time (UTC) or an "
        "age like 400d.",
    )  # fmt: skip
    @click.option(
        "--admin-before", metavar="DATE",
        help="The same for the admin chain (its own, usually longer, retention); default: "
        "the admin chain is kept whole.",
    )  # fmt: skip
    @click.option("--by", default=None, help="Who purges (default: the login name).")
    @click.option("--dry-run", is_flag=True, help="Say what would be deleted; change nothing.")
    def purge(before: str, admin_before: str | None, by: str | None, dry_run: bool) -> None:
        """Delete whole rotated audit files past the retention period (never a live file),
        after writing a signed purge record to the admin chain."""
        now = dt.datetime.now(dt.UTC)
        cut = _cutoff("--before", before, now)
        admin_cut = _cutoff("--admin-before", admin_before, now) if admin_before else None
        conf = settings()
        admin_log = pathlib.Path(conf.admin_log)
        logs = list(dict.fromkeys([*configured_logs(), *series(admin_log)]))
        plan = purging.plan(logs, cut, admin_cut)
        if not plan.files:
            click.echo(f"nothing to purge before {cut:%Y-%m-%dT%H:%M:%SZ}")
            return
        for span in plan.files:
            click.echo(
                f"{'would delete' if dry_run else 'delete'} {span.path}: {span.worker} seq "
                f"{span.first_seq}-{span.last_seq}, newest record {span.newest}"
            )
        if dry_run:
            return
        previous = purging.latest_purge(series(admin_log))
        last = previous[2] if previous is not None else {}
        anchors = (last.get("socialgate") or {}).get("purge", {}).get("chains", {})
        body = purging.purge_body(plan, cut, anchors if isinstance(anchors, dict) else {})
        who = by or os.environ.get("SUDO_USER") or getpass.getuser()
        signing = conf.signing_key.strip()
        append_records(
            admin_log,
            [purge_record(body, user=who, now=now)],
            key_path=pathlib.Path(conf.key),
            signing_key_path=pathlib.Path(signing) if signing else None,
            checkpoints_path=pathlib.Path(conf.checkpoints) if conf.checkpoints else None,
            seal_dir=seal_dir(),
        )
        purging.delete(plan)
        n = len(plan.files)
        click.echo(f"purged {n} file{'' if n == 1 else 's'}; purge record written to {admin_log}")
