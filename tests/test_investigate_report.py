"""`socialgate audit report`: the numbers (JSON), the integrity verdict, the HTML file."""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import pytest

from tests.support.audit_scenario import Ev, proxy_host_workdir, write_logs, write_policy
from tests.support.cli import socialgate, socialgate_json


@pytest.fixture
def case(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    return proxy_host_workdir(tmp_path, monkeypatch, key=True)


def report(capsys: pytest.CaptureFixture[bytes], *args: str) -> dict[str, Any]:
    return socialgate_json(capsys, "audit", "report", "--format", "json", *args)


def heat(data: dict[str, Any]) -> dict[tuple[int, int], int]:
    return {(d, h): n for d, row in enumerate(data["heatmap"]) for h, n in enumerate(row) if n}


# --- numbers -------------------------------------------------------------------------


def test_totals_and_exemptions_of_alice(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Alice: 10 accesses (4 allowed, 6 blocked), the grant about her, her group's exemption."""
    data = report(capsysbinary, "--user", "alice")
    assert data["totals"] == {"accesses": 10, "allowed": 4, "blocked": 6, "other_events": 1}
    assert data["blocked_by_reason"] == {"no-exemption": 1, "outside-schedule": 5}
    assert data["groups"] == ["press-office"]
    [ex] = data["exemptions"]
    assert (ex["id"], ex["approved_by"], ex["expires"], ex["ticket"]) == (
        "EX-PRESS",
        "d.smith",
        "2026-12-31",
        "CHG-1042",
    )
    assert ex["business_case"].startswith("Press office posts")
    assert len(data["events"]) == 11


def test_days_are_london_days_across_the_spring_change(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Per-day counts for 27-31 March in Europe/London; every day of the period is a bar."""
    data = report(capsysbinary, "--user", "alice", "--since", "2026-03-27", "--until", "2026-03-31")
    assert [(d["date"], d["allowed"], d["blocked"]) for d in data["per_day"]] == [
        ("2026-03-27", 1, 0),
        ("2026-03-28", 0, 1),
        ("2026-03-29", 0, 2),
        ("2026-03-30", 2, 1),
        ("2026-03-31", 0, 0),
    ]


def test_without_a_period_the_days_run_from_first_to_last_record(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """27 March to 26 October inclusive: 214 days."""
    data = report(capsysbinary, "--user", "alice")
    assert len(data["per_day"]) == 214
    assert sum(d["allowed"] for d in data["per_day"]) == 4
    assert sum(d["blocked"] for d in data["per_day"]) == 6


@pytest.mark.parametrize(
    ("tz", "cells"),
    [
        # weekday (0 = Monday), local hour -> accesses
        (
            "Europe/London",
            {(4, 9): 1, (5, 10): 1, (6, 0): 1, (6, 2): 1, (0, 8): 3, (0, 13): 1, (6, 1): 2},
        ),
        ("UTC", {(4, 9): 1, (5, 10): 1, (6, 0): 2, (6, 1): 2, (0, 7): 2, (0, 12): 1, (0, 8): 1}),
    ],
)
def test_heat_map_cells_at_both_dst_changes(
    case: pathlib.Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    tz: str,
    cells: dict[tuple[int, int], int],
) -> None:
    """Spring: 01:30 UTC is 02:30 BST; autumn: two accesses at 01:30 local, an hour apart."""
    assert heat(report(capsysbinary, "--user", "alice", "--tz", tz)) == cells


def test_top_sites_by_total_then_name(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """x.com (8: 3 allowed, 5 blocked) first; ties ordered by name."""
    data = report(capsysbinary, "--user", "alice")
    assert data["top_sites"] == [
        {"site": "x.com", "allowed": 3, "blocked": 5},
        {"site": "facebook.com", "allowed": 0, "blocked": 1},
        {"site": "linkedin.com", "allowed": 1, "blocked": 0},
    ]


def misuse(data: dict[str, Any]) -> dict[str, int]:
    return {m["label"]: m["count"] for m in data["outside_exemption"] if m["count"]}


def test_use_outside_the_exemption_terms_for_dave(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Dave: a write under read-only and an attempt after expiry; his exemption is listed."""
    data = report(capsysbinary, "--user", "dave")
    assert misuse(data) == {"Blocked: after expiry": 1, "Blocked: write, read-only": 1}
    assert [e["id"] for e in data["exemptions"]] == ["EX-DAVE"]


def test_exemptions_are_those_valid_in_the_period(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Dave's exemption expired on 28 March: a report from April lists none."""
    data = report(capsysbinary, "--user", "dave", "--since", "2026-04-01")
    assert data["exemptions"] == []
    assert data["totals"]["accesses"] == 0


def test_allowed_access_outside_the_current_schedule_is_flagged(
    tmp_path: pathlib.Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An access allowed on a Saturday (under an older policy) is counted as outside schedule."""
    logs = write_logs(
        tmp_path / "logs",
        [
            Ev("2026-03-28T10:00:00", "w1", "alice", "x.com", "allowed", "exemption", "EX-PRESS"),
            Ev("2026-03-27T10:00:00", "w1", "alice", "x.com", "allowed", "exemption", "EX-PRESS"),
        ],
    )
    write_policy(tmp_path / "policies")
    monkeypatch.chdir(tmp_path)
    data = report(capsysbinary, "--user", "alice", *map(str, logs))
    assert misuse(data) == {"Allowed: outside schedule *": 1}


# --- integrity -----------------------------------------------------------------------


def test_verified_logs_are_reported_intact(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """With the chain key, the verdict is the verifier's: intact, every record counted."""
    data = report(capsysbinary, "--user", "alice", "--key", "audit-hmac.key")
    assert data["integrity"]["verified"] is True
    assert data["integrity"]["ok"] is True
    assert data["integrity"]["message"].startswith("intact: 22 records")


def test_altered_record_makes_the_verdict_not_intact(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Changing one path in one record is found and named with its file and line."""
    target = case / "logs" / "audit-w2.jsonl"
    text = target.read_text()
    target.write_text(text.replace('"path":"/2/tweets"', '"path":"/2/other"', 1))
    data = report(capsysbinary, "--user", "alice", "--key", "audit-hmac.key")
    assert data["integrity"]["verified"] is True
    assert data["integrity"]["ok"] is False
    assert data["integrity"]["message"].startswith("NOT intact")
    assert any("audit-w2.jsonl:" in p for p in data["integrity"]["problems"])


def test_without_a_key_the_report_says_not_verified(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """No --key and no keys/audit-hmac.key: never "intact"."""
    data = report(capsysbinary, "--user", "alice")
    assert data["integrity"] == {
        "verified": False,
        "ok": False,
        "message": "integrity not verified: no chain key given (use --key)",
        "records": 0,
        "problems": [],
    }


def test_default_key_location_is_used(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """keys/audit-hmac.key (where `socialgate run` keeps it) is found without --key."""
    (case / "keys").mkdir()
    (case / "audit-hmac.key").rename(case / "keys" / "audit-hmac.key")
    assert report(capsysbinary, "--user", "alice")["integrity"]["ok"] is True


def test_missing_verifier_is_stated(
    case: pathlib.Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the verifier cannot be imported the report says so instead of guessing."""
    monkeypatch.setitem(sys.modules, "proxy_addons.audit.verify", None)
    data = report(capsysbinary, "--user", "alice", "--key", "audit-hmac.key")
    assert data["integrity"]["verified"] is False
    assert data["integrity"]["message"].startswith("integrity not verified: the verifier")


def test_unreadable_key_is_stated_not_fatal(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """A bad key file leaves the report readable, marked not verified, with the reason."""
    (case / "bad.key").write_text("not hex\n")
    data = report(capsysbinary, "--user", "alice", "--key", "bad.key")
    assert data["integrity"]["verified"] is False
    assert "bad.key" in data["integrity"]["message"]


# --- the HTML file ----------------------------------------------------------------------


def test_html_is_written_self_contained_and_private(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """One file with a CSP forbidding fetches, no external URLs in attributes, mode 0600."""
    result = socialgate(
        capsysbinary,
        "audit",
        "report",
        "--user",
        "alice",
        "--html",
        "r.html",
        "--key",
        "audit-hmac.key",
    )
    assert result.code == 0, result.err
    html = (case / "r.html").read_text()
    assert "default-src 'none'" in html
    for attr in ('src="http', "src='http", 'href="http', "url(", "@import", "<script", "<link"):
        assert attr not in html
    assert (case / "r.html").stat().st_mode & 0o777 == 0o600
    assert "intact: 22 records" in html


def test_damaged_lines_appear_in_the_report(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Skipped lines are listed with file:line in the case file, not only on the terminal."""
    with (case / "logs" / "audit.jsonl").open("a") as fh:
        fh.write('{"@timestamp":"2026-03-30T08:00:00.000000Z","user":{"name":"alice"')
    data = report(capsysbinary, "--user", "alice")
    assert len(data["damaged_lines"]) == 1
    assert data["damaged_lines"][0].startswith("logs/audit.jsonl:")
    assert "partially written" in data["damaged_lines"][0]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--user", "alice"], "--html"),
        (["--html", "r.html"], "--user"),
        (["--user", "alice", "--html", "r.html", "--policy", "none.yaml"], "none.yaml"),
        (["--user", "alice", "--html", "no/such/dir/r.html"], "r.html"),
    ],
)
def test_bad_report_usage_exits_2(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes], args: list[str], named: str
) -> None:
    """No output chosen, no user, no policy, unwritable output: exit 2 naming it."""
    result = socialgate(capsysbinary, "audit", "report", *args)
    assert result.code == 2
    assert named in result.err
