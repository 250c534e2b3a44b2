"""The decision function: tables of who may reach which social site, when and how."""

from __future__ import annotations

import datetime as dt
import pathlib

import pytest

from proxy_addons.decide import Outcome, Reason, decide
from proxy_addons.policy.load import parse_policy_text
from proxy_addons.policy.model import Policy
from proxy_addons.requestfacts import Write
from tests.support.categories import SOCIAL_LIST, SOCIAL_LIST_PATH

POLICY = """\
version: 1
organisation: Example
contact: it@example.org
policy_url: https://intranet.example.org/policy
timezone: Europe/London
categories:
  social_networking:
    description: Social
    domains_files: [categories/social.txt]
    domains: [mastodon.social]
    networks: [192.0.2.0/24, "2001:db8:5::/48"]
  video:
    description: Not blocked
    domains: [video.example]
blocked_categories: [social_networking]
groups:
  press-office: [alice, bob]
  research: [dana]
exemptions:
  - id: EX-1
    group: press-office
    sites: [x.com, linkedin.com]
    access: full
    business_case: Press office posts official statements
    approved_by: d.smith
    granted: 2026-01-10
    expires: 2026-12-31
  - id: EX-2
    group: research
    sites: [social_networking]
    access: read-only
    business_case: Open-source research
    approved_by: d.smith
    granted: 2026-01-10
    expires: 2026-12-31
  - id: EX-3
    user: erin
    sites: [facebook.com]
    access: full
    business_case: Community management
    approved_by: d.smith
    granted: 2026-03-01
    expires: 2026-03-31
    schedule:
      days: [mon, tue, wed, thu, fri]
      from: "08:00"
      to: "18:00"
      timezone: Europe/London
  - id: EX-4
    user: night
    sites: [facebook.com]
    access: full
    business_case: Night shift monitoring
    approved_by: d.smith
    granted: 2026-01-01
    expires: 2026-12-31
    schedule:
      days: [fri]
      from: "22:00"
      to: "06:00"
      timezone: Asia/Tokyo
  - id: EX-5
    user: frank
    sites: [facebook.com]
    access: full
    business_case: Revoked campaign
    approved_by: d.smith
    granted: 2026-01-01
    expires: 2026-12-31
    revoked: {{date: 2026-06-01, by: d.smith, reason: misuse}}
"""


@pytest.fixture(scope="module")
def policy() -> Policy:
    def read(path: pathlib.Path) -> bytes:
        assert path.as_posix().endswith(SOCIAL_LIST_PATH)
        return SOCIAL_LIST.encode()

    return parse_policy_text(POLICY.replace("{{", "{").replace("}}", "}"), "policy.yaml", read)


def at(text: str) -> dt.datetime:
    """An aware datetime; naive text is UTC."""
    t = dt.datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


WED_NOON = at("2026-03-11T12:00:00")


@pytest.mark.parametrize(
    ("user", "names", "method", "when", "outcome", "reason", "exemption"),
    [
        # not social: nothing to decide, whoever asks
        (None, ["www.example.org"], "GET", WED_NOON, Outcome.NOT_SOCIAL, Reason.NOT_SOCIAL, None),
        (
            "carol",
            ["notfacebook.com"],
            "GET",
            WED_NOON,
            Outcome.NOT_SOCIAL,
            Reason.NOT_SOCIAL,
            None,
        ),
        (
            "carol",
            ["facebook.com.evil.example"],
            "GET",
            WED_NOON,
            Outcome.NOT_SOCIAL,
            Reason.NOT_SOCIAL,
            None,
        ),
        ("carol", ["video.example"], "GET", WED_NOON, Outcome.NOT_SOCIAL, Reason.NOT_SOCIAL, None),
        # social, nobody exempt
        (None, ["www.facebook.com"], "GET", WED_NOON, Outcome.BLOCKED, Reason.NO_IDENTITY, None),
        (
            "carol",
            ["www.facebook.com"],
            "GET",
            WED_NOON,
            Outcome.BLOCKED,
            Reason.NO_EXEMPTION,
            None,
        ),
        (
            "carol",
            ["WWW.FaceBook.com.:443"],
            "GET",
            WED_NOON,
            Outcome.BLOCKED,
            Reason.NO_EXEMPTION,
            None,
        ),
        ("carol", ["mastodon.social"], "GET", WED_NOON, Outcome.BLOCKED, Reason.NO_EXEMPTION, None),
        ("carol", ["192.0.2.77"], "GET", WED_NOON, Outcome.BLOCKED, Reason.NO_EXEMPTION, None),
        ("carol", ["2001:db8:5::1"], "GET", WED_NOON, Outcome.BLOCKED, Reason.NO_EXEMPTION, None),
        ("carol", ["3221226061"], "GET", WED_NOON, Outcome.BLOCKED, Reason.NO_EXEMPTION, None),
        # group exemption: members only, listed sites and their site groups only
        ("alice", ["x.com"], "POST", WED_NOON, Outcome.ALLOWED, Reason.EXEMPTION, "EX-1"),
        ("bob", ["pbs.twimg.com"], "GET", WED_NOON, Outcome.ALLOWED, Reason.EXEMPTION, "EX-1"),
        ("bob", ["www.linkedin.com"], "GET", WED_NOON, Outcome.ALLOWED, Reason.EXEMPTION, "EX-1"),
        (
            "alice",
            ["www.facebook.com"],
            "GET",
            WED_NOON,
            Outcome.BLOCKED,
            Reason.NO_EXEMPTION,
            None,
        ),
        ("carol", ["x.com"], "GET", WED_NOON, Outcome.BLOCKED, Reason.NO_EXEMPTION, None),
        # category-wide read-only exemption
        ("dana", ["www.facebook.com"], "GET", WED_NOON, Outcome.ALLOWED, Reason.EXEMPTION, "EX-2"),
        ("dana", ["x.com"], "head", WED_NOON, Outcome.ALLOWED, Reason.EXEMPTION, "EX-2"),
        ("dana", ["x.com"], "OPTIONS", WED_NOON, Outcome.ALLOWED, Reason.EXEMPTION, "EX-2"),
        ("dana", ["x.com"], "POST", WED_NOON, Outcome.BLOCKED, Reason.READ_ONLY, "EX-2"),
        ("dana", ["x.com"], "PUT", WED_NOON, Outcome.BLOCKED, Reason.READ_ONLY, "EX-2"),
        ("dana", ["x.com"], "PATCH", WED_NOON, Outcome.BLOCKED, Reason.READ_ONLY, "EX-2"),
        ("dana", ["x.com"], "DELETE", WED_NOON, Outcome.BLOCKED, Reason.READ_ONLY, "EX-2"),
        ("dana", ["x.com"], None, WED_NOON, Outcome.ALLOWED, Reason.EXEMPTION, "EX-2"),
        # names that disagree
        (
            "carol",
            ["198.51.100.1", "www.facebook.com"],
            None,
            WED_NOON,
            Outcome.BLOCKED,
            Reason.NO_EXEMPTION,
            None,
        ),
        (
            "alice",
            ["x.com", "x.com", "X.com."],
            "GET",
            WED_NOON,
            Outcome.ALLOWED,
            Reason.EXEMPTION,
            "EX-1",
        ),
        (
            "alice",
            ["x.com", "api.x.com"],
            "GET",
            WED_NOON,
            Outcome.ALLOWED,
            Reason.EXEMPTION,
            "EX-1",
        ),
        (
            "alice",
            ["x.com", "www.example.org"],
            "GET",
            WED_NOON,
            Outcome.BLOCKED,
            Reason.NAME_MISMATCH,
            "EX-1",
        ),
        (
            "alice",
            ["x.com", "www.facebook.com"],
            "GET",
            WED_NOON,
            Outcome.BLOCKED,
            Reason.NO_EXEMPTION,
            None,
        ),
        # revoked from its date on
        (
            "frank",
            ["facebook.com"],
            "GET",
            at("2026-05-31T12:00"),
            Outcome.ALLOWED,
            Reason.EXEMPTION,
            "EX-5",
        ),
        (
            "frank",
            ["facebook.com"],
            "GET",
            at("2026-06-01T12:00"),
            Outcome.BLOCKED,
            Reason.REVOKED,
            "EX-5",
        ),
    ],
)
def test_decide(
    policy: Policy,
    user: str | None,
    names: list[str],
    method: str | None,
    when: dt.datetime,
    outcome: Outcome,
    reason: Reason,
    exemption: str | None,
) -> None:
    """Each row: who, which names, which method, when → outcome, reason, exemption."""
    d = decide(policy, user, names, method, when)
    assert (d.outcome, d.reason, d.exemption_id) == (outcome, reason, exemption)


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        # dates are inclusive and read in the exemption's zone (Europe/London, BST in March 31)
        ("2026-02-28T23:59:59+00:00", Reason.NOT_YET_VALID),
        ("2026-03-02T09:00:00+00:00", None),  # Monday
        ("2026-03-31T16:59:00+00:00", None),  # Tue 17:59 BST, last day
        ("2026-03-31T17:00:00+00:00", Reason.OUTSIDE_SCHEDULE),  # 18:00 BST: window closed
        ("2026-03-31T23:30:00+00:00", Reason.EXPIRED),  # already 1 April in London
        ("2026-04-01T00:30:00+01:00", Reason.EXPIRED),
        # schedule: weekdays 08:00-18:00 London
        ("2026-03-07T12:00:00+00:00", Reason.OUTSIDE_SCHEDULE),  # Saturday
        ("2026-03-09T07:59:00+00:00", Reason.OUTSIDE_SCHEDULE),  # GMT: 07:59
        ("2026-03-09T08:00:00+00:00", None),
        ("2026-03-30T07:00:00+00:00", None),  # after the clocks went forward: 08:00 BST
        ("2026-03-30T06:59:00+00:00", Reason.OUTSIDE_SCHEDULE),  # 07:59 BST
    ],
)
def test_dates_and_schedule_boundaries(policy: Policy, when: str, reason: Reason | None) -> None:
    """Validity dates are inclusive and schedules follow the exemption's time zone and DST."""
    d = decide(policy, "erin", ["www.facebook.com"], "GET", at(when))
    assert d.reason == (reason or Reason.EXEMPTION)
    assert d.allowed == (reason is None)


@pytest.mark.parametrize(
    ("when", "allowed"),
    [
        # Friday 22:00 to Saturday 06:00, Tokyo time (UTC+9)
        ("2026-03-13T13:00:00+00:00", True),  # Fri 22:00 JST
        ("2026-03-13T12:59:00+00:00", False),  # Fri 21:59 JST
        ("2026-03-13T20:59:00+00:00", True),  # Sat 05:59 JST: belongs to Friday's window
        ("2026-03-13T21:00:00+00:00", False),  # Sat 06:00 JST
        ("2026-03-14T13:30:00+00:00", False),  # Sat 22:30 JST: Saturday not listed
    ],
)
def test_overnight_schedule(policy: Policy, when: str, allowed: bool) -> None:
    """A window past midnight belongs to the day it starts on."""
    assert decide(policy, "night", ["facebook.com"], "GET", at(when)).allowed is allowed


def test_websocket_is_not_read_only(policy: Policy) -> None:
    """A WebSocket upgrade is a two-way channel: a read-only exemption does not allow it."""
    d = decide(policy, "dana", ["x.com"], "GET", WED_NOON, writes=(Write.UPGRADE,))
    assert d.reason is Reason.READ_ONLY


def test_read_only_needs_interception(policy: Policy) -> None:
    """Without interception a read-only exemption cannot be enforced, so it blocks."""
    d = decide(policy, "dana", ["x.com"], None, WED_NOON, intercepted=False)
    assert (d.outcome, d.reason) == (Outcome.BLOCKED, Reason.READ_ONLY_NOT_ENFORCEABLE)
    assert decide(policy, "alice", ["x.com"], None, WED_NOON, intercepted=False).allowed


def test_decision_carries_site_and_names(policy: Policy) -> None:
    """The decision names the matched host, list entry, site, category and every name seen."""
    d = decide(policy, "carol", ["i.TWIMG.com", "i.twimg.com:443"], "GET", WED_NOON)
    assert (d.host, d.entry, d.site, d.category) == (
        "i.twimg.com",
        "twimg.com",
        "x.com",
        "social_networking",
    )
    assert d.names == ("i.twimg.com",)
    assert not d.name_mismatch
