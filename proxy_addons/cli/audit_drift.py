"""`socialgate audit drift`: workers that enforced different policies at the same time.

Reads every worker's log, of every host, together (default: the configured trail);
exit 0 when every worker ran the same policy, 1 when some drifted (one line per
window: the two workers, the two policy sha256s, the time window), 2 bad usage.
`audit stats` runs the same check and warns on stderr (`warn_drift`).
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib

import click

from proxy_addons.cli.common import configured_logs
from proxy_addons.investigate.drift import DEFAULT_GRACE, PREFILTER, Drift, drifts
from proxy_addons.investigate.read import LogReader


def find_drift(logs: list[pathlib.Path], grace: dt.timedelta) -> list[Drift]:
    """The drift windows in ``logs`` (damaged lines are skipped: `audit verify` reports them)."""
    return drifts(LogReader(logs, prefilter=PREFILTER), grace)


def warn_drift(logs: list[pathlib.Path]) -> None:
    """One stderr warning per drift window (for commands whose stdout is data)."""
    for d in find_drift(logs, DEFAULT_GRACE):
        click.echo(f"warning: {d.text()}", err=True)


def register(group: click.Group) -> None:
    """Add `drift` to the `audit` group."""

    @group.command("drift")
    @click.argument("logs", nargs=-1, type=click.Path(dir_okay=False, path_type=pathlib.Path))
    @click.option(
        "--grace",
        type=click.FloatRange(min=0),
        default=DEFAULT_GRACE.total_seconds(),
        show_default=True,
        metavar="SECONDS",
        help="Windows this short are reload skew, not drift.",
    )
    @click.option(
        "--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True
    )
    @click.pass_context
    def drift(ctx: click.Context, logs: tuple[pathlib.Path, ...], grace: float, fmt: str) -> None:
        """Flag workers (of any host) that ran different policies at the same time:
        exit 0 none, 1 drift found, 2 bad usage."""
        found = find_drift(list(logs) or configured_logs(), dt.timedelta(seconds=grace))
        if fmt == "json":
            click.echo(json.dumps({"drift": [d.to_json() for d in found]}, indent=2))
        else:
            for d in found:
                click.echo(d.text())
            if not found:
                click.echo("no policy drift: every worker ran the same policy at each moment")
        if found:
            ctx.exit(1)
