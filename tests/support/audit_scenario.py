"""Audit logs with known content for the investigation tests.

Records are built by the proxy's own `access_record` / `event_record` and
sealed into per-worker hash chains by `audit.chain`, so the reader is tested
against the format the proxy writes, and `audit verify` can vouch for them.

The scenario sits on both 2026 Europe/London DST changes (29 March: 01:00 UTC
becomes 02:00 BST; 25 October: 01:00 UTC is 01:00 GMT, after 01:00 BST came
once already), so local days, hours and weekdays differ from UTC ones.
"""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from proxy_addons.audit.chain import GENESIS, canonical, seal
from proxy_addons.audit.record import Access, access_record, event_record
from proxy_addons.decide import Decision, Outcome, Reason
from proxy_addons.policy.model import Access as AccessLevel

KEY = bytes(range(32))
POLICY_SHA = "0" * 64

POLICY_YAML = """\
version: 1
organisation: Example Department
contact: it-security@example.org
policy_url: https://intranet.example.org/social-media-policy
timezone: Europe/London
categories:
  social_networking:
    description: Social networking sites
    domains: [facebook.com, x.com, linkedin.com]
blocked_categories: [social_networking]
groups:
  press-office: [alice, bob]
exemptions:
  - id: EX-PRESS
    group: press-office
    sites: [x.com, linkedin.com]
    access: full
    business_case: Press office posts official statements and monitors coverage
    approved_by: d.smith
    ticket: CHG-1042
    granted: 2026-01-10
    expires: 2026-12-31
    schedule:
      days: [mon, tue, wed, thu, fri]
      from: "08:00"
      to: "18:00"
      timezone: Europe/London
  - id: EX-DAVE
    user: dave
    sites: [facebook.com]
    access: read-only
    business_case: Open-source research for case 17
    approved_by: e.jones
    granted: 2026-01-01
    expires: 2026-03-28
"""


@dataclass(frozen=True, slots=True)
class Ev:
    """One record of the scenario."""

    at: str  # UTC, ISO without zone
    worker: str
    user: str | None
    domain: str = ""
    outcome: str = ""  # allowed | blocked | "" for a non-access event
    reason: str = ""
    exemption: str | None = None
    method: str = "GET"
    path: str = "/"
    action: str = ""  # non-access events only
    target: str | None = None

    @property
    def when(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.at).replace(tzinfo=dt.UTC)

    @property
    def site(self) -> str:
        return ".".join(self.domain.split(".")[-2:])


GROUPS = {"alice": ("press-office",), "bob": ("press-office",)}

# Numbered in the comments for the expectations in the tests; London time on the right.
SCENARIO: tuple[Ev, ...] = (
    Ev("2026-03-27T08:00:00", "w1", None, action="policy-loaded"),
    Ev("2026-03-27T08:00:00.500000", "w2", None, action="policy-loaded"),
    # alice, EX-PRESS (Mon-Fri 08-18 London)
    Ev(
        "2026-03-27T09:00:00", "w1", "alice", "x.com", "allowed", "exemption", "EX-PRESS"
    ),  # Fri 09 GMT
    Ev(
        "2026-03-28T10:00:00", "w2", "alice", "x.com", "blocked", "outside-schedule", "EX-PRESS"
    ),  # Sat 10
    Ev(
        "2026-03-29T00:30:00", "w1", "alice", "x.com", "blocked", "outside-schedule", "EX-PRESS"
    ),  # Sun 00:30 GMT
    Ev(
        "2026-03-29T01:30:00", "w2", "alice", "x.com", "blocked", "outside-schedule", "EX-PRESS"
    ),  # Sun 02:30 BST
    Ev(
        "2026-03-30T07:30:00", "w1", "alice", "x.com", "allowed", "exemption", "EX-PRESS"
    ),  # Mon 08:30 BST
    Ev(
        "2026-03-30T07:45:00",
        "w2",
        "alice",
        "api.x.com",
        "allowed",
        "exemption",
        "EX-PRESS",
        "POST",
        "/2/tweets",
    ),  # Mon 08:45
    Ev(
        "2026-03-30T12:00:00", "w1", "alice", "www.facebook.com", "blocked", "no-exemption"
    ),  # Mon 13 BST
    Ev(
        "2026-10-25T00:30:00", "w1", "alice", "x.com", "blocked", "outside-schedule", "EX-PRESS"
    ),  # Sun 01:30 BST
    Ev(
        "2026-10-25T01:30:00", "w2", "alice", "x.com", "blocked", "outside-schedule", "EX-PRESS"
    ),  # Sun 01:30 GMT
    Ev(
        "2026-10-26T08:30:00", "w1", "alice", "www.linkedin.com", "allowed", "exemption", "EX-PRESS"
    ),  # Mon 08:30 GMT
    # bob, EX-PRESS
    Ev(
        "2026-03-27T17:30:00", "w2", "bob", "x.com", "allowed", "exemption", "EX-PRESS"
    ),  # Fri 17:30 GMT
    Ev(
        "2026-03-30T17:30:00", "w1", "bob", "x.com", "blocked", "outside-schedule", "EX-PRESS"
    ),  # Mon 18:30 BST
    # carol, no exemption
    Ev(
        "2026-03-27T12:00:00", "w1", "carol", "www.facebook.com", "blocked", "no-exemption"
    ),  # Fri 12 GMT
    Ev(
        "2026-03-28T23:30:00", "w2", "carol", "m.facebook.com", "blocked", "no-exemption"
    ),  # Sat 23:30 GMT
    Ev(
        "2026-03-29T23:30:00", "w1", "carol", "facebook.com", "blocked", "no-exemption"
    ),  # Mon 00:30 BST
    # dave, EX-DAVE (read-only, expired after 28 March)
    Ev("2026-03-27T10:00:00", "w1", "dave", "www.facebook.com", "allowed", "exemption", "EX-DAVE"),
    Ev(
        "2026-03-27T10:05:00",
        "w2",
        "dave",
        "www.facebook.com",
        "blocked",
        "read-only",
        "EX-DAVE",
        "POST",
        "/ajax/post",
    ),
    Ev("2026-03-30T10:00:00", "w2", "dave", "www.facebook.com", "blocked", "expired", "EX-DAVE"),
    # nobody authenticated
    Ev("2026-03-28T12:00:00", "w1", None, "x.com", "blocked", "no-identity"),
    # an admin grants alice another exemption (an event about alice, not an access)
    Ev(
        "2026-03-30T09:00:00",
        "w1",
        "d.smith",
        action="exemption-granted",
        target="alice",
        exemption="EX-ALICE-2",
    ),
)


def ref(i: int) -> str:
    return f"SG-TEST{i // 100000:1d}-{i % 100000:05d}"


def record(ev: Ev, i: int) -> dict[str, Any]:
    """The proxy's record of one scenario event."""
    if not ev.outcome:
        return event_record(
            ev.action,
            f"{ev.action} (test)",
            now=ev.when,
            category=["configuration"],
            type_=["change"],
            user=ev.user,
            target_user=ev.target,
            socialgate={"exemption_id": ev.exemption} if ev.exemption else {},
        )
    allowed = ev.outcome == "allowed"
    access_level = (
        (AccessLevel.READ_ONLY if ev.exemption == "EX-DAVE" else AccessLevel.FULL)
        if ev.exemption
        else None
    )
    decision = Decision(
        Outcome.ALLOWED if allowed else Outcome.BLOCKED,
        Reason(ev.reason),
        host=ev.domain,
        category="social_networking",
        entry=ev.site,
        site=ev.site,
        exemption_id=ev.exemption,
        access=access_level,
        names=(ev.domain,),
    )
    access = Access(
        user=ev.user,
        identity="proxyauth" if ev.user else "none",
        groups=GROUPS.get(ev.user or "", ()),
        source_ip="10.0.0.7",
        source_port=50000 + i,
        stage="request",
        scheme="https",
        domain=ev.domain,
        port=443,
        method=ev.method,
        path=ev.path,
        status_code=200 if allowed else 403,
    )
    return access_record(decision, access, ref=ref(i), policy_sha256=POLICY_SHA, now=ev.when)


def sealed_lines(events: Iterable[Ev], start: int = 0) -> dict[str, list[str]]:
    """Canonical, chained lines per worker, each worker's in time order."""
    ordered = sorted(enumerate(events, start), key=lambda item: item[1].when)
    out: dict[str, list[str]] = {}
    prev: dict[str, str] = {}
    for i, ev in ordered:
        lines = out.setdefault(ev.worker, [])
        sealed = seal(
            KEY,
            record(ev, i),
            worker=ev.worker,
            seq=len(lines) + 1,
            prev=prev.get(ev.worker, GENESIS),
        )
        prev[ev.worker] = sealed["socialgate"]["chain"]["hash"]
        lines.append(canonical(sealed) + "\n")
    return out


def write_logs(directory: pathlib.Path, events: Sequence[Ev] = SCENARIO) -> list[pathlib.Path]:
    """Worker w1 as a rotated series (audit.jsonl.1 then audit.jsonl), w2 in its own file."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = sealed_lines(events)
    w1, w2 = lines.get("w1", []), lines.get("w2", [])
    half = len(w1) // 2
    files = {
        directory / "audit.jsonl.1": w1[:half],
        directory / "audit.jsonl": w1[half:],
        directory / "audit-w2.jsonl": w2,
    }
    for path, content in files.items():
        path.write_text("".join(content), encoding="utf-8")
    return list(files)


def write_policy(directory: pathlib.Path) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "policy.yaml"
    path.write_text(POLICY_YAML, encoding="utf-8")
    return path


def write_key(directory: pathlib.Path) -> pathlib.Path:
    path = directory / "audit-hmac.key"
    path.write_text(KEY.hex() + "\n", encoding="ascii")
    path.chmod(0o600)
    return path


def proxy_host_workdir(
    directory: pathlib.Path, monkeypatch: pytest.MonkeyPatch, *, key: bool = False
) -> pathlib.Path:
    """Make ``directory`` the working directory as on the proxy host and return it.

    It holds policies/policy.yaml and logs/audit*.jsonl* (and audit-hmac.key if ``key``);
    SOCIALGATE_POLICY is unset so the commands find the policy where an admin's would.
    """
    write_logs(directory / "logs")
    write_policy(directory / "policies")
    if key:
        write_key(directory)
    monkeypatch.chdir(directory)
    monkeypatch.delenv("SOCIALGATE_POLICY", raising=False)
    return directory
