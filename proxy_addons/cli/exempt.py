"""`socialgate exempt grant | renew | revoke | list`.

Edits go through `proxy_addons.policy.edit` (comment-preserving, validated,
locked, atomic). Each change is recorded in the admin audit chain
(``logs/admin-audit.jsonl`` by default, see `proxy_addons.audit.append`)
naming the admin and the affected user or group; if the record cannot be
written, the policy file is put back as it was.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import pathlib
import re
from collections.abc import Callable
from typing import Any

import click

from proxy_addons.audit.append import append_records
from proxy_addons.audit.keys import load_secret, load_signing_key
from proxy_addons.audit.record import Record, event_record
from proxy_addons.cli.common import (
    CONFIGURED,
    KEY_HINT,
    format_option,
    from_settings,
    holder_text,
    policy_option,
    seal_dir,
)
from proxy_addons.decide import Reason, exemption_verdict
from proxy_addons.errors import AuditError, ConfigError
from proxy_addons.paths import DEFAULT_ADMIN_LOG, DEFAULT_KEY, DEFAULT_SIGNING_KEY
from proxy_addons.policy import edit
from proxy_addons.policy.load import load_policy
from proxy_addons.policy.model import Access, Exemption, Policy, Schedule
from proxy_addons.policy.schedule import parse_schedule, schedule_text

_WITHIN = re.compile(r"^([0-9]{1,5})([dw]?)$")


def os_user() -> str:
    """The account running the command (recorded with every change)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def parse_date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"{option} {value!r}: not a date YYYY-MM-DD") from None


def parse_within(value: str) -> int:
    """``30d``, ``4w`` or ``30`` → days."""
    m = _WITHIN.match(value.strip().lower())
    if m is None:
        raise ConfigError(f"--expiring-within {value!r}: expected days like 30d or weeks like 4w")
    return int(m.group(1)) * (7 if m.group(2) == "w" else 1)


# (option, setting, default shown, help), in the order --help lists them.
_AUDIT_OPTIONS = (
    ("--audit-log", "admin_log", DEFAULT_ADMIN_LOG, "Admin audit chain the change is recorded in."),
    ("--key", "key", DEFAULT_KEY, "HMAC key of the audit chain (the proxy's)."),
    (
        "--signing-key",
        "signing_key",
        DEFAULT_SIGNING_KEY,
        "Ed25519 key that signs a checkpoint after each change ('' for none).",
    ),
)


def audit_options[F: Callable[..., Any]](f: F) -> F:
    """Where the admin audit chain goes, and its keys (default: the configuration's)."""
    # Decorators apply innermost first: the last option listed is added first.
    for name, attribute, default, help_ in reversed(_AUDIT_OPTIONS):
        f = click.option(
            name,
            default=None,
            callback=from_settings(attribute),
            show_default=CONFIGURED + default,
            metavar="PATH",
            help=help_,
        )(f)
    return f


def check_keys(key: str, signing_key: str, *, sealed: bool = False) -> None:
    """The chain's keys exist and load: the CLI never generates keys (ConfigError, exit 2).

    ``sealed``: forward-secure sealing, whose epoch key state `append_records` loads."""
    try:
        if not sealed:
            load_secret(pathlib.Path(key), "audit key")
        if signing_key.strip():
            load_signing_key(pathlib.Path(signing_key))
    except AuditError as e:
        raise ConfigError(f"{e}: {KEY_HINT}") from None


def _schedule_text(s: Schedule | None) -> str | None:
    return schedule_text(s) if s is not None else None


def _exemption_fields(ex: Exemption) -> dict[str, Any]:
    # Key order is part of the admin audit record as written: keep it.
    return {"exemption_id": ex.id, **ex.terms(), "schedule": _schedule_text(ex.schedule)}


def change_record(result: edit.EditResult, admin: str, now: dt.datetime) -> Record:
    """The ``exemption-granted|renewed|revoked`` record of one edit."""
    ex = result.after
    fields: dict[str, Any] = {
        **_exemption_fields(ex),
        "policy_path": result.policy.path,
        "policy_sha256": result.policy.sha256,
        "previous_sha256": result.previous_sha256,
        "os_user": os_user(),
    }
    subject = holder_text(ex)
    if result.action == "granted":
        message = f"exemption {ex.id} granted to {subject} by {admin}: {', '.join(ex.sites)}"
        type_ = ["creation"]
    elif result.action == "renewed":
        before = result.before
        assert before is not None
        fields["previous"] = {
            "granted": before.granted.isoformat(),
            "expires": before.expires.isoformat(),
            "approved_by": before.approved_by,
        }
        message = f"exemption {ex.id} of {subject} renewed by {admin} until {ex.expires}"
        type_ = ["change"]
    else:
        assert ex.revoked is not None
        fields["revoked"] = ex.revoked.as_dict()
        message = f"exemption {ex.id} of {subject} revoked by {admin}: {ex.revoked.reason}"
        type_ = ["change"]
    return event_record(
        f"exemption-{result.action}",
        message,
        now=now,
        category=["iam", "configuration"],
        type_=type_,
        user=admin,
        target_user=ex.user,
        target_group=ex.group,
        socialgate=fields,
    )


def _committer(
    admin: str, audit_log: str, key: str, signing_key: str
) -> Callable[[edit.EditResult], None]:
    sealed_in = seal_dir()
    check_keys(key, signing_key, sealed=sealed_in is not None)  # before anything is edited

    def commit(result: edit.EditResult) -> None:
        record = change_record(result, admin, dt.datetime.now(dt.UTC))
        try:
            append_records(
                pathlib.Path(audit_log),
                [record],
                key_path=pathlib.Path(key),
                signing_key_path=pathlib.Path(signing_key) if signing_key.strip() else None,
                seal_dir=sealed_in,
            )
        except AuditError as e:
            raise AuditError(f"{e}; the policy file was left unchanged") from None

    return commit


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        out.extend(s for s in re.split(r"[,\s]+", v) if s)
    return tuple(out)


@click.group()
def exempt() -> None:
    """Grant, renew, revoke and list exemptions in the policy file.

    Edits keep the file's comments and layout, are validated before they are
    written, written atomically and recorded in the admin audit chain. The
    proxy picks them up within seconds, without a restart.
    """


@exempt.command()
@policy_option
@click.option("--user", metavar="USER", help="The user exempted (or --group).")
@click.option("--group", metavar="GROUP", help="The group exempted (or --user).")
@click.option(
    "--sites",
    multiple=True,
    required=True,
    metavar="SITES",
    help="Domains or category names, comma-separated or repeated.",
)
@click.option("--access", type=click.Choice([a.value for a in Access]), required=True)
@click.option("--business-case", required=True, metavar="TEXT")
@click.option("--approved-by", required=True, metavar="NAME", help="Who approved it (recorded).")
@click.option("--expires", required=True, metavar="DATE", help="Last valid day, YYYY-MM-DD.")
@click.option("--ticket", metavar="TICKET", help="Change or request ticket.")
@click.option(
    "--schedule",
    metavar="SCHEDULE",
    help="When it may be used: 'DAYS HH:MM-HH:MM [TIMEZONE]', "
    "e.g. 'mon-fri 08:00-18:00 Europe/London'.",
)
@audit_options
def grant(
    policy_path: str,
    user: str | None,
    group: str | None,
    sites: tuple[str, ...],
    access: str,
    business_case: str,
    approved_by: str,
    expires: str,
    ticket: str | None,
    schedule: str | None,
    audit_log: str,
    key: str,
    signing_key: str,
) -> None:
    """Grant an exemption; prints the new id (EX-<year>-<NNN>)."""
    spec = edit.GrantSpec(
        user=user,
        group=group,
        sites=_split(sites),
        access=Access(access),
        business_case=business_case,
        approved_by=approved_by,
        expires=parse_date(expires, "--expires"),
        ticket=ticket,
        schedule=parse_schedule(schedule) if schedule else None,
    )
    admin = approved_by.strip()
    result = edit.grant(policy_path, spec, commit=_committer(admin, audit_log, key, signing_key))
    ex = result.after
    click.echo(
        f"granted {ex.id}: {holder_text(ex)}, {', '.join(ex.sites)} ({ex.access}) "
        f"from {ex.granted} until {ex.expires}"
    )


@exempt.command()
@policy_option
@click.argument("exemption_id", metavar="ID")
@click.option("--expires", required=True, metavar="DATE", help="New last valid day, YYYY-MM-DD.")
@click.option("--approved-by", required=True, metavar="NAME", help="Who approved the renewal.")
@audit_options
def renew(
    policy_path: str,
    exemption_id: str,
    expires: str,
    approved_by: str,
    audit_log: str,
    key: str,
    signing_key: str,
) -> None:
    """Extend exemption ID under a new approval (the approval period restarts today)."""
    result = edit.renew(
        policy_path,
        exemption_id,
        expires=parse_date(expires, "--expires"),
        approved_by=approved_by,
        commit=_committer(approved_by.strip(), audit_log, key, signing_key),
    )
    click.echo(f"renewed {result.exemption_id}: valid until {result.after.expires}")


@exempt.command()
@policy_option
@click.argument("exemption_id", metavar="ID")
@click.option("--by", required=True, metavar="NAME", help="Who revokes it (recorded).")
@click.option("--reason", required=True, metavar="TEXT")
@audit_options
def revoke(
    policy_path: str,
    exemption_id: str,
    by: str,
    reason: str,
    audit_log: str,
    key: str,
    signing_key: str,
) -> None:
    """Revoke exemption ID from today; the entry stays in the file, marked, as evidence."""
    result = edit.revoke(
        policy_path,
        exemption_id,
        by=by,
        reason=reason,
        commit=_committer(by.strip(), audit_log, key, signing_key),
    )
    assert result.after.revoked is not None
    click.echo(f"revoked {result.exemption_id} from {result.after.revoked.date}")


def status_of(policy: Policy, ex: Exemption, now: dt.datetime) -> str:
    """active, not-yet-valid, expired or revoked (a schedule does not change it)."""
    verdict = exemption_verdict(policy, ex, None, now)
    if verdict in (Reason.REVOKED, Reason.EXPIRED, Reason.NOT_YET_VALID):
        return str(verdict)
    return "active"


def _row(policy: Policy, ex: Exemption, status: str, today: dt.date) -> dict[str, Any]:
    return {
        "id": ex.id,
        "status": status,
        "user": ex.user,
        "group": ex.group,
        **ex.terms(),
        "days_left": (ex.expires - today).days,
        "schedule": _schedule_text(ex.schedule),
        "revoked": ex.revoked.as_dict() if ex.revoked else None,
    }


def _table(rows: list[dict[str, Any]]) -> str:
    columns: list[tuple[str, Callable[[dict[str, Any]], object]]] = [
        ("ID", lambda r: r["id"]),
        ("STATUS", lambda r: r["status"]),
        ("WHO", lambda r: f"user:{r['user']}" if r["user"] else f"group:{r['group']}"),
        ("SITES", lambda r: ",".join(r["sites"])),
        ("ACCESS", lambda r: r["access"]),
        ("EXPIRES", lambda r: r["expires"]),
        ("APPROVED BY", lambda r: r["approved_by"]),
        ("TICKET", lambda r: r["ticket"] or "-"),
    ]
    cells = [[str(get(r)) for _, get in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _) in enumerate(columns)]
    lines = ["  ".join(h.ljust(w) for (h, _), w in zip(columns, widths, strict=True)).rstrip()]
    for c in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
    return "\n".join(lines)


@exempt.command("list")
@policy_option
@click.option(
    "--user", metavar="USER", help="Only exemptions that apply to USER (or their groups)."
)
@click.option("--group", metavar="GROUP", help="Only exemptions granted to GROUP.")
@click.option(
    "--expiring-within",
    metavar="DAYS",
    help="Only those expiring within this many days (30d, 4w).",
)
@click.option("--include-expired", is_flag=True, help="Also show expired and revoked ones.")
@format_option("table", "json")
def list_(
    policy_path: str,
    user: str | None,
    group: str | None,
    expiring_within: str | None,
    include_expired: bool,
    fmt: str,
) -> None:
    """List exemptions (by default those in force or not yet started)."""
    within = parse_within(expiring_within) if expiring_within is not None else None
    policy = load_policy(policy_path)
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(policy.timezone).date()
    chosen: tuple[Exemption, ...] = policy.exemptions
    if user is not None:
        chosen = policy.exemptions_by_user.get(user, ())
    if group is not None:
        chosen = tuple(e for e in chosen if e.group == group)
    rows: list[dict[str, Any]] = []
    for ex in chosen:
        status = status_of(policy, ex, now)
        if status in ("expired", "revoked") and not include_expired:
            continue
        if within is not None and (ex.expires - today).days > within:
            continue
        rows.append(_row(policy, ex, status, today))
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        click.echo(_table(rows))
    else:
        click.echo("no exemptions match")
