"""`socialgate check`: the decision for a user and URL, and why each exemption applied or not."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from typing import Any

import pytest

from tests.support.cli import Socialgate, make_runner
from tests.support.commented_policy import policy_text, today, write_policy

T = today()
Y = T.year
D = dt.timedelta
SATURDAY = T + D(days=(5 - T.weekday()) % 7 or 7)
MONDAY = SATURDAY + D(days=2)

EXTRA = f"""\
  - id: EX-{Y}-010
    user: gina
    sites: [facebook.com]
    access: full
    business_case: Community hour
    approved_by: d.smith
    granted: {T - D(10)}
    expires: {T + D(30)}
    schedule:
      days: [mon, tue, wed, thu, fri]
      from: "09:00"
      to: "17:00"
  - id: EX-{Y}-011
    user: frank
    sites: [facebook.com]
    access: full
    business_case: Was misused
    approved_by: d.smith
    granted: {T - D(10)}
    expires: {T + D(30)}
    revoked: {{date: {T - D(1)}, by: e.admin, reason: Misuse}}
  - id: EX-{Y}-012
    user: frank
    sites: [x.com]
    access: full
    business_case: Starts soon
    approved_by: d.smith
    granted: {T + D(5)}
    expires: {T + D(20)}
"""


@pytest.fixture
def sg(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Socialgate:
    monkeypatch.delenv("SOCIALGATE_POLICY", raising=False)
    return make_runner(capsys)


@pytest.fixture
def policy(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_policy(tmp_path, policy_text(EXTRA))


def check_json(sg: Socialgate, policy: pathlib.Path, *args: str) -> dict[str, Any]:
    r = sg("check", "--policy", str(policy), "--format", "json", *args)
    assert r.code == 0, r.err
    doc: dict[str, Any] = json.loads(r.out)
    return doc


# -- decisions and their reasons -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "outcome", "reason", "exemption"),
    [
        (["--user", "alice", "https://www.x.com/home"], "allowed", "exemption", f"EX-{Y}-001"),
        (["--user", "alice", "https://facebook.com/"], "blocked", "no-exemption", None),
        (["--user", "carol", "https://m.facebook.com/"], "blocked", "no-exemption", None),
        (["--user", "dana", "--method", "post", "https://facebook.com/"], "blocked",
         "read-only", f"EX-{Y}-002"),
        (["--user", "dana", "--method", "HEAD", "https://facebook.com/"], "allowed",
         "exemption", f"EX-{Y}-002"),
        (["--user", "erin", "https://facebook.com/"], "blocked", "expired", f"EX-{Y - 1}-007"),
        (["--user", "gina", "--at", f"{SATURDAY}T10:00", "facebook.com"], "blocked",
         "outside-schedule", f"EX-{Y}-010"),
        (["--user", "gina", "--at", f"{MONDAY}T10:00", "facebook.com"], "allowed",
         "exemption", f"EX-{Y}-010"),
        (["--user", "frank", "https://facebook.com/"], "blocked", "revoked", f"EX-{Y}-011"),
        (["--user", "frank", "https://x.com/"], "blocked", "not-yet-valid", f"EX-{Y}-012"),
        (["--user", "frank", "--at", str(T + D(6)), "https://x.com/"], "allowed", "exemption",
         f"EX-{Y}-012"),
        (["--user", "alice", "https://www.example.org/"], "not-social", "not-social", None),
        (["--user", "alice", "WWW.X.COM.:443"], "allowed", "exemption", f"EX-{Y}-001"),
    ],
)  # fmt: skip
def test_decision(
    sg: Socialgate,
    policy: pathlib.Path,
    args: list[str],
    outcome: str,
    reason: str,
    exemption: str | None,
) -> None:
    """The decision, its reason and the exemption that applied (or came closest)."""
    d = check_json(sg, policy, *args)["decision"]
    assert (d["outcome"], d["reason"], d["exemption_id"]) == (outcome, reason, exemption)


def test_match_names_category_site_and_list_entry(sg: Socialgate, policy: pathlib.Path) -> None:
    """A host grouped under a [site] header names that site and the entry that matched."""
    d = check_json(sg, policy, "--user", "carol", "https://pbs.twimg.com/x.jpg")["decision"]
    assert (d["category"], d["site"], d["entry"]) == ("social_networking", "x.com", "twimg.com")


@pytest.mark.parametrize(
    ("args", "details"),
    [
        (["--user", "frank", "https://facebook.com/"],
         [f"EX-{Y}-011: revoked on {T - D(1)} by e.admin: Misuse",
          f"EX-{Y}-012: other site: covers x.com, not facebook.com"]),
        (["--user", "erin", "https://facebook.com/"], [f"EX-{Y - 1}-007: expired on {T - D(20)}"]),
        (["--user", "frank", "https://x.com/"],
         [f"EX-{Y}-011: other site: covers facebook.com, not x.com",
          f"EX-{Y}-012: not valid before {T + D(5)}"]),
        (["--user", "gina", "--at", f"{SATURDAY}T10:00", "facebook.com"],
         [f"EX-{Y}-010: outside its schedule (mon,tue,wed,thu,fri 09:00-17:00 UTC)"]),
        (["--user", "dana", "--method", "PUT", "facebook.com"],
         [f"EX-{Y}-002: read-only: PUT is not allowed (only GET, HEAD, OPTIONS)"]),
        (["--user", "bob", "x.com"], [f"EX-{Y}-001: applies (full access until {T + D(30)})"]),
    ],
)  # fmt: skip
def test_each_exemption_is_explained(
    sg: Socialgate, policy: pathlib.Path, args: list[str], details: list[str]
) -> None:
    """Every exemption naming the user is listed with why it did or did not apply."""
    doc = check_json(sg, policy, *args)
    assert [f"{e['id']}: {e['detail']}" for e in doc["exemptions"]] == details


def test_text_output(sg: Socialgate, policy: pathlib.Path) -> None:
    """The default output leads with the decision and marks the exemption used."""
    r = sg("check", "--policy", str(policy), "--user", "bob", "https://linkedin.com/feed")
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0] == f"ALLOWED under exemption EX-{Y}-001 (full access)"
    assert "  user:     bob (groups: press-office)" in lines
    assert "  matched:  category social_networking, site linkedin.com, list entry linkedin.com" in (
        lines
    )
    assert lines[-1].startswith(f"    * EX-{Y}-001 (group press-office, full): applies")


def test_text_output_for_a_user_without_exemptions(sg: Socialgate, policy: pathlib.Path) -> None:
    """A blocked user with no exemption is told so."""
    r = sg("check", "--policy", str(policy), "--user", "carol", "facebook.com")
    assert r.out.splitlines()[0] == "BLOCKED (no-exemption)"
    assert r.out.splitlines()[-1] == "  exemptions: none names carol or their groups"


def test_at_without_zone_is_read_in_the_policy_zone(sg: Socialgate, policy: pathlib.Path) -> None:
    """--at with no offset is the policy's local time; with an offset it is taken as given."""
    doc = check_json(sg, policy, "--user", "gina", "--at", f"{MONDAY}T16:30", "facebook.com")
    assert doc["at"] == f"{MONDAY}T16:30:00+00:00"
    late = check_json(sg, policy, "--user", "gina", "--at", f"{MONDAY}T16:30-02:00", "facebook.com")
    assert late["decision"]["reason"] == "outside-schedule"  # 18:30 UTC


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "a", "https://"], "no valid host name"),
        (["--user", "a", "--at", "tomorrow", "x.com"], "--at 'tomorrow'"),
        (["--user", "a", "--method", "GET /", "x.com"], "--method"),
        (["--user", " ", "x.com"], "--user must not be empty"),
        (["--user", "a", "--policy", "/nonexistent/policy.yaml", "x.com"], "cannot read"),
    ],
)
def test_bad_input_exits_2(
    sg: Socialgate, policy: pathlib.Path, args: list[str], message: str
) -> None:
    """Bad input is one line on stderr and exit status 2."""
    r = sg("check", "--policy", str(policy), *args)
    assert r.code == 2
    assert message in r.err
    assert len(r.err.strip().splitlines()) == 1


@pytest.mark.parametrize("url", ["http://[::1", "http://www.facebook.com:99999/"])
def test_malformed_url_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path, url: str
) -> None:
    """A URL that cannot be parsed is one error line and exit 2, not a traceback."""
    policy = write_policy(tmp_path)
    r = make_runner(capsys)("check", "--policy", str(policy), "--user", "carol", url)
    assert r.code == 2
    assert r.err.strip().splitlines() == [
        f"socialgate: URL {url!r}: " + r.err.split(": ", 2)[2].strip()
    ]
    assert "not a valid URL" in r.err
