"""`audit report`: one person's activity as a case-file document (HTML) or JSON.

The numbers are computed once (`build`) and both formats are drawn from
them, so the HTML an investigator attaches and the JSON another tool reads
cannot disagree. The integrity box never claims "intact" unless
`audit verify` ran on the same files and succeeded.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import pathlib
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2

from proxy_addons import __version__
from proxy_addons.errors import AuditError
from proxy_addons.investigate import charts
from proxy_addons.investigate import fields as f
from proxy_addons.investigate.people import describe_schedule, exemptions_of, groups_of
from proxy_addons.investigate.read import Entry
from proxy_addons.investigate.search import LocalTime, detail, event_label
from proxy_addons.investigate.timeparse import Period, key_to_datetime
from proxy_addons.policy.model import Exemption, Policy
from proxy_addons.problems import Problem

TOP_SITES = 10
# Blocked reasons that mean "tried to use an exemption beyond its terms".
MISUSE_REASONS = (
    ("outside-schedule", "Blocked: outside schedule"),
    ("expired", "Blocked: after expiry"),
    ("revoked", "Blocked: after revocation"),
    ("not-yet-valid", "Blocked: before start"),
    ("read-only", "Blocked: write, read-only"),
)
# Allowed by the proxy, yet outside the exemption's terms in the current policy.
ALLOWED_OUTSIDE_SCHEDULE = "Allowed: outside schedule *"
ALLOWED_OUTSIDE_VALIDITY = "Allowed: outside validity *"


@dataclass(frozen=True, slots=True)
class Integrity:
    """What `audit verify` said about the files read; ``verified`` False means it did not run."""

    verified: bool
    ok: bool
    message: str
    records: int = 0
    problems: tuple[str, ...] = ()


def check_integrity(
    paths: Sequence[pathlib.Path],
    key: pathlib.Path | None,
    checkpoints: pathlib.Path | None,
    seed: pathlib.Path | None = None,
) -> Integrity:
    """Run `audit verify` on the logs, or say exactly why it was not run."""
    try:
        verify = importlib.import_module("proxy_addons.audit.verify")
    except ImportError:
        return Integrity(False, False, "integrity not verified: the verifier is not installed")
    if key is None and seed is None:
        return Integrity(False, False, "integrity not verified: no chain key given (use --key)")
    try:
        result = verify.verify_logs(
            list(paths), key_path=key, checkpoints_path=checkpoints, seed_path=seed
        )
    except (AuditError, OSError) as e:
        return Integrity(False, False, f"integrity not verified: {e}")
    problems = tuple(f"{p.file}:{p.line}: {p.message}" for p in result.problems)
    if result.ok and not problems:
        return Integrity(
            True,
            True,
            f"intact: {result.records} records verified against the chain key",
            records=result.records,
        )
    return Integrity(
        True,
        False,
        f"NOT intact: {len(problems)} problem(s) found by audit verify",
        records=result.records,
        problems=problems,
    )


@dataclass
class _Tally:
    days: dict[str, list[int]] = field(default_factory=dict)
    heat: list[list[int]] = field(default_factory=lambda: [[0] * 24 for _ in range(7)])
    sites: dict[str, list[int]] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    misuse: Counter[str] = field(default_factory=Counter)
    allowed: int = 0
    blocked: int = 0
    other: int = 0
    first: str | None = None
    last: str | None = None
    record_groups: dict[str, None] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


def _day_range(first: dt.date, last: dt.date) -> list[str]:
    n = (last - first).days
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(n + 1)]


def _policy_breach(ex: Exemption | None, when: dt.datetime, policy: Policy) -> str | None:
    """For an allowed access: does the current policy say it fell outside the exemption?"""
    if ex is None:
        return None
    tz = ex.schedule.timezone if ex.schedule else policy.timezone
    day = when.astimezone(tz).date()
    revoked = ex.revoked is not None and when.date() >= ex.revoked.date
    if day < ex.granted or day > ex.expires or revoked:
        return ALLOWED_OUTSIDE_VALIDITY
    if ex.schedule is not None and not ex.schedule.allows(when):
        return ALLOWED_OUTSIDE_SCHEDULE
    return None


def build(
    entries: Iterable[Entry],
    *,
    user: str,
    policy: Policy | None,
    period: Period,
    tz: dt.tzinfo,
    tz_name: str,
    files: list[str],
    problems: Sequence[Problem],
    integrity: Integrity,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Every number and row of the report, JSON-safe.

    Without a policy (a case folder of copied logs and keys) the report is built from the
    records alone and says so; with one, it adds group names and exemption details, and
    notes whether the policy's sha256 appears in the records read.
    """
    t = _Tally()
    seen_sha256: set[str] = set()
    local = LocalTime(tz)
    for e in entries:
        r = e.record
        when = local.at(e.key)
        t.first = t.first or e.key
        t.last = e.key
        t.record_groups.update(dict.fromkeys(f.groups(r)))
        sha = f.sg(r).get("policy_sha256")
        if isinstance(sha, str):
            seen_sha256.add(sha)
        outcome = f.outcome(r)
        t.events.append(
            {
                "time": when.isoformat(),
                "event": event_label(r),
                "reason": f.reason(r) or "",
                "method": f.method(r) or "",
                "detail": detail(r),
                "exemption": f.exemption_id(r) or "",
                "ref": f.ref(r) or "",
                "source": f"{files[e.fileno]}:{e.line}",
            }
        )
        if outcome is None:
            t.other += 1
            continue
        day = t.days.setdefault(when.date().isoformat(), [0, 0])
        t.heat[when.weekday()][when.hour] += 1
        site = t.sites.setdefault(f.site(r) or "(unknown)", [0, 0])
        reason = f.reason(r) or ""
        t.reasons[reason] += 1
        if outcome == "allowed":
            t.allowed += 1
            day[0] += 1
            site[0] += 1
            ex_id = f.exemption_id(r)
            ex = policy.exemption(ex_id) if ex_id and policy is not None else None
            breach = _policy_breach(ex, key_to_datetime(e.key), policy) if policy else None
            if breach:
                t.misuse[breach] += 1
        else:
            t.blocked += 1
            day[1] += 1
            site[1] += 1
            t.misuse[reason] += 1

    first: dt.date | None
    last: dt.date | None
    if period.since and period.until:
        first = period.since.astimezone(tz).date()
        last = (period.until - dt.timedelta(microseconds=1)).astimezone(tz).date()
    elif t.days:
        first = dt.date.fromisoformat(min(t.days))
        last = dt.date.fromisoformat(max(t.days))
        if period.since:
            first = period.since.astimezone(tz).date()
        if period.until:
            last = (period.until - dt.timedelta(microseconds=1)).astimezone(tz).date()
    else:
        first = last = None
    days = _day_range(first, last) if first and last else []
    per_day = [
        {"date": d, "allowed": t.days.get(d, [0, 0])[0], "blocked": t.days.get(d, [0, 0])[1]}
        for d in days
    ]
    top = sorted(t.sites.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))[:TOP_SITES]
    misuse = [
        {"label": label, "reason": reason, "count": t.misuse[reason]}
        for reason, label in MISUSE_REASONS
    ]
    misuse += [
        {"label": label, "reason": None, "count": t.misuse[label]}
        for label in (ALLOWED_OUTSIDE_SCHEDULE, ALLOWED_OUTSIDE_VALIDITY)
    ]
    generated = (now or dt.datetime.now(dt.UTC)).astimezone(tz)
    return {
        "user": user,
        "groups": [g for g in groups_of(user, policy, t.record_groups)],
        "period": {
            "since": period.since.astimezone(tz).isoformat() if period.since else None,
            "until": period.until.astimezone(tz).isoformat() if period.until else None,
            "first_record": local.at(t.first).isoformat() if t.first else None,
            "last_record": local.at(t.last).isoformat() if t.last else None,
            "timezone": tz_name,
        },
        "generated": generated.isoformat(timespec="seconds"),
        "generator": f"socialgate {__version__}",
        "policy": {
            "path": policy.path,
            "sha256": policy.sha256,
            "organisation": policy.organisation,
            "in_records": policy.sha256 in seen_sha256 if seen_sha256 else None,
        }
        if policy is not None
        else None,
        "logs": files,
        "integrity": {
            "verified": integrity.verified,
            "ok": integrity.ok,
            "message": integrity.message,
            "records": integrity.records,
            "problems": list(integrity.problems),
        },
        "damaged_lines": [str(p) for p in problems],
        "exemptions": [
            {
                "id": ex.id,
                "subject": ex.subject,
                **ex.terms(),
                "schedule": describe_schedule(ex),
                "revoked": ex.revoked.as_dict() if ex.revoked else None,
            }
            for ex in (exemptions_of(user, policy, period) if policy is not None else ())
        ],
        "totals": {
            "accesses": t.allowed + t.blocked,
            "allowed": t.allowed,
            "blocked": t.blocked,
            "other_events": t.other,
        },
        "blocked_by_reason": {k: v for k, v in sorted(t.reasons.items()) if k != "exemption"},
        "per_day": per_day,
        "heatmap": t.heat,
        "top_sites": [{"site": s, "allowed": a, "blocked": b} for s, (a, b) in top],
        "outside_exemption": misuse,
        "events": t.events,
    }


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("proxy_addons.investigate", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(data: dict[str, Any]) -> str:
    """The self-contained HTML document (inline CSS and SVG; the CSP forbids any fetch)."""
    svg = {
        "daily": charts.daily([(d["date"], d["allowed"], d["blocked"]) for d in data["per_day"]]),
        "heatmap": charts.heatmap(data["heatmap"]),
        "sites": charts.hbars(
            [
                (
                    s["site"],
                    (
                        ("allowed", s["allowed"], charts.ALLOWED),
                        ("blocked", s["blocked"], charts.BLOCKED),
                    ),
                )
                for s in data["top_sites"]
            ],
            "Top sites",
            "sites",
        ),
        "misuse": charts.hbars(
            [
                (m["label"], (("misuse", m["count"], charts.MISUSE),))
                for m in data["outside_exemption"]
            ],
            "Use outside the exemption's terms",
            "misuse",
        ),
    }
    return _environment().get_template("report.html.j2").render(r=data, svg=svg)


def write_atomic(path: pathlib.Path, text: str) -> None:
    """Write beside the target and rename: a half-written report is never left behind.

    Mode 0600: the report is personal data about an employee.
    """
    target = path.resolve()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as e:
        raise AuditError(f"{path}: cannot write report: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except OSError as e:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise AuditError(f"{path}: cannot write report: {e.strerror or e}") from None
