"""`socialgate audit verify`: is the audit trail complete and unaltered?

Exit 0 intact, 1 damaged (each problem printed as ``file:line: what``, the
first one first), 2 bad usage (no key, no log, unreadable file).

Forward-sealed chains need the verification seed (``--seed``); each chain's epochs are
summarised (``--epochs``: one line per epoch) with the last sealed epoch and its end time:
where proof against a later re-sealing stops.
"""

from __future__ import annotations

import pathlib

import click

from proxy_addons.audit.files import default_checkpoints_path, series
from proxy_addons.audit.verify import VerifyReport, verify_logs
from proxy_addons.cli.common import CONFIGURED, KEY_HINT, configured_logs, from_settings, settings
from proxy_addons.errors import AuditError, ConfigError
from proxy_addons.paths import DEFAULT_KEY, DEFAULT_PUBKEY, DEFAULT_SEED

_MAX_SHOWN = 50


def _logs(given: tuple[pathlib.Path, ...]) -> tuple[list[pathlib.Path], list[pathlib.Path]]:
    """(every file to check, the default checkpoint files of their series that exist)."""
    files: list[pathlib.Path] = []
    for base in given:
        found = series(base)
        if not found:
            raise AuditError(f"audit log {base} does not exist")
        files.extend(found)
    if not given:
        files = configured_logs()
    checkpoints: list[pathlib.Path] = []
    for log in files:
        cp = default_checkpoints_path(log)
        if cp not in checkpoints and cp.exists():
            checkpoints.append(cp)
    return files, checkpoints


def register(group: click.Group) -> None:
    """Add this module's commands to the `audit` group."""

    @group.command("verify")
    @click.argument("logs", nargs=-1, type=click.Path(path_type=pathlib.Path))
    @click.option(
        "--checkpoints",
        "checkpoints",
        multiple=True,
        type=click.Path(path_type=pathlib.Path, exists=True, dir_okay=False),
        help="Signed checkpoint file, or a shipped copy: a syslog file or journal export "
        "holding them (repeatable; default: <log name>.checkpoints beside each log).",
    )
    @click.option(
        "--key",
        type=click.Path(path_type=pathlib.Path),
        default=None,
        callback=from_settings("key"),
        show_default=CONFIGURED + DEFAULT_KEY,
        help="The chain's HMAC key file.",
    )
    @click.option(
        "--pubkey",
        type=click.Path(path_type=pathlib.Path),
        default=None,
        help=f"Trusted checkpoint public key (default: the one beside the configured signing "
        f"key, else {DEFAULT_PUBKEY}, if present).",
    )
    @click.option(
        "--seed",
        type=click.Path(path_type=pathlib.Path),
        default=None,
        help=f"Verification seed of forward-sealed chains (kept off the proxy host; default: "
        f"{DEFAULT_SEED} if present).",
    )
    @click.option("--epochs", "show_epochs", is_flag=True, help="List every epoch of each chain.")
    @click.pass_context
    def verify(
        ctx: click.Context,
        logs: tuple[pathlib.Path, ...],
        checkpoints: tuple[pathlib.Path, ...],
        key: pathlib.Path,
        pubkey: pathlib.Path | None,
        seed: pathlib.Path | None,
        show_epochs: bool,
    ) -> None:
        """Prove LOG... (default: every audit log in logs/, as `audit search` reads them)
        complete and unaltered: exit 0 intact, 1 damaged, 2 bad usage."""
        files, default_cps = _logs(logs)
        key = pathlib.Path(key)
        if pubkey is None:
            for candidate in (settings().public_key, DEFAULT_PUBKEY):
                if candidate and pathlib.Path(candidate).exists():
                    pubkey = pathlib.Path(candidate)
                    break
        if seed is None and pathlib.Path(DEFAULT_SEED).exists():
            seed = pathlib.Path(DEFAULT_SEED)
        if not key.exists() and seed is None:
            raise ConfigError(f"audit key {key} does not exist: {KEY_HINT}")
        report = verify_logs(
            files,
            key_path=key if key.exists() else None,
            checkpoints_path=list(checkpoints) or default_cps,
            public_key_path=pubkey,
            seed_path=seed,
        )
        if report.records and report.forged == report.records:
            # Not damage but the wrong key: one line, not one false alarm per record.
            used = f"{key}" + (f" / seed {seed}" if seed else "")
            raise ConfigError(
                f"wrong key: {used} matches none of the {report.records} records, from the "
                "first: these logs were sealed with another key (use the installation's, "
                "named by its config.yaml)"
            )
        for problem in report.problems[:_MAX_SHOWN]:
            click.echo(str(problem))
        if len(report.problems) > _MAX_SHOWN:
            click.echo(f"... and {len(report.problems) - _MAX_SHOWN} more problems")
        for note in report.notes:
            click.echo(f"note: {note}")
        _epochs(report, show_epochs)
        if not report.checkpoints:
            click.echo("note: no checkpoints given: a truncated tail cannot be detected")
        summary = (
            f"{report.records} records in {report.files} files, {len(report.workers)} chains"
            + "".join(f"; {w}: seq {a}-{b}" for w, (a, b) in sorted(report.workers.items()))
            + f"; {report.checkpoints} checkpoints"
        )
        if report.ok and not report.records:
            # Nothing was checked: an emptied (or wrong) file must not read as proof.
            names = ", ".join(str(f) for f in files)
            click.echo(
                f"NO RECORDS: {names} {'holds' if len(files) == 1 else 'hold'} no audit record; "
                "nothing is proven (a log the proxy wrote starts with audit-started: was it "
                "emptied, or is it the wrong file?)"
            )
            ctx.exit(1)
        if report.ok:
            click.echo(f"intact: {summary}")
            return
        first = report.problems[0]
        click.echo(
            f"DAMAGED: first problem at {first.file}:{first.line}: {first.message} "
            f"({len(report.problems)} problems; {summary})"
        )
        ctx.exit(1)


def _epochs(report: VerifyReport, every: bool) -> None:
    """Where proof by sealing stops, per chain; with ``every``, one line per epoch."""
    for worker, epochs in sorted(report.epochs.items()):
        if every:
            for e in epochs:
                how = f"sealed ({e.sealed}) {e.start} to {e.end}" if e.sealed else "NOT sealed"
                span = f", {e.first} to {e.last}" if e.records else ""
                click.echo(f"epoch {worker} {e.n}: {e.records} records{span}; {how}")
        if not epochs:
            if worker in report.format1:
                click.echo(f"note: {worker}: format 1 (one static key): not forward-sealed")
            continue
        sealed = [e for e in epochs if e.sealed]
        late = sum(1 for e in sealed if e.late)
        text = f"epochs of {worker}: {epochs[0].n}-{epochs[-1].n}, {len(sealed)} sealed"
        text += f" ({late} late, after a crash)" if late else ""
        if sealed:
            text += f"; last sealed epoch {sealed[-1].n} ends {sealed[-1].end}"
        if not epochs[-1].sealed:
            e = epochs[-1]
            span = f" ({e.records} records, {e.first} to {e.last})" if e.records else ""
            text += (
                f"; epoch {e.n}{span} is not sealed: proof against re-sealing stops at the end "
                "of the last sealed epoch"
            )
        click.echo(text)
