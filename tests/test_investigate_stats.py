"""`socialgate audit stats`: exact counts over the known scenario (support/audit_scenario.py)."""

from __future__ import annotations

import csv
import io
import pathlib
from typing import Any

import pytest

from tests.support.audit_scenario import Ev, proxy_host_workdir, write_logs, write_policy
from tests.support.cli import socialgate, socialgate_json


@pytest.fixture
def case(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    return proxy_host_workdir(tmp_path, monkeypatch)


def stats_json(capsys: pytest.CaptureFixture[bytes], *args: str) -> dict[str, Any]:
    return socialgate_json(capsys, "audit", "stats", "--format", "json", *args)


def rows(data: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    cols = ("blocked_attempts", "allowed_requests", "distinct_users", "users_with_exemption")
    out = {r["key"]: tuple(r[c] for c in cols) for r in data["rows"]}
    out["(total)"] = tuple(data["total"][c] for c in cols)
    return out


# (blocked, allowed, distinct users, users holding an exemption) per row
BY_CASES = [
    (
        "user",
        [],
        {
            "(unidentified)": (1, 0, 1, 0),
            "alice": (6, 4, 1, 1),
            "bob": (1, 1, 1, 1),
            "carol": (3, 0, 1, 0),
            "dave": (2, 1, 1, 1),
            "(total)": (13, 6, 5, 3),
        },
    ),
    (
        "group",
        [],
        {
            "press-office": (7, 5, 2, 2),
            "(none)": (6, 1, 3, 1),
            "(total)": (13, 6, 5, 3),
        },
    ),
    (
        "site",
        [],
        {
            "x.com": (7, 4, 3, 2),
            "facebook.com": (6, 1, 3, 2),
            "linkedin.com": (0, 1, 1, 1),
            "(total)": (13, 6, 5, 3),
        },
    ),
    ("category", [], {"social_networking": (13, 6, 5, 3), "(total)": (13, 6, 5, 3)}),
    ("month", [], {"2026-03": (11, 5, 5, 3), "2026-10": (2, 1, 1, 1), "(total)": (13, 6, 5, 3)}),
    ("outcome", [], {"allowed": (0, 6, 3, 3), "blocked": (13, 0, 5, 3), "(total)": (13, 6, 5, 3)}),
    ("user", ["--since", "2026-10-01"], {"alice": (2, 1, 1, 1), "(total)": (2, 1, 1, 1)}),
]


@pytest.mark.parametrize(
    ("by", "args", "expected"), BY_CASES, ids=[f"{c[0]}{' '.join(c[1])}" for c in BY_CASES]
)
def test_counts_by_field_are_exact(
    case: pathlib.Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    by: str,
    args: list[str],
    expected: dict[str, tuple[int, ...]],
) -> None:
    """Blocked attempts, allowed requests, distinct users and exemption holders per row."""
    data = stats_json(capsysbinary, "--by", by, *args)
    assert rows(data) == expected
    assert data["other_events"] == (3 if not args else 0)


def test_exemption_holders_come_from_the_policy_for_the_period(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """After dave's exemption expired only the press office holds one (alice and bob)."""
    assert stats_json(capsysbinary)["exemption_holders"] == 3
    assert stats_json(capsysbinary, "--since", "2026-04-01")["exemption_holders"] == 2


def test_month_buckets_follow_the_display_zone(
    tmp_path: pathlib.Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """23:30 UTC on 31 March is April in London (BST) but March in UTC."""
    logs = write_logs(
        tmp_path / "logs",
        [Ev("2026-03-31T23:30:00", "w1", "carol", "x.com", "blocked", "no-exemption")],
    )
    write_policy(tmp_path / "policies")
    monkeypatch.chdir(tmp_path)
    files = [str(p) for p in logs]
    london = stats_json(capsysbinary, "--by", "month", *files)
    utc = stats_json(capsysbinary, "--by", "month", "--tz", "UTC", *files)
    assert [r["key"] for r in london["rows"]] == ["2026-04"]
    assert [r["key"] for r in utc["rows"]] == ["2026-03"]


def test_small_counts_are_suppressed_in_every_format(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """With --suppress-below 5, counts 1-4 are withheld (null / "<5"); 0 and >= 5 are shown."""
    data = stats_json(capsysbinary, "--by", "user", "--suppress-below", "5")
    got = rows(data)
    assert got["alice"] == (6, None, None, None)
    assert got["carol"] == (None, 0, None, 0)
    assert got["(total)"] == (13, 6, 5, None)
    assert data["exemption_holders"] is None
    result = socialgate(
        capsysbinary, "audit", "stats", "--by", "user", "--suppress-below", "5", "--format", "csv"
    )
    table = {r[0]: r[1:] for r in csv.reader(io.StringIO(result.text))}
    assert table["alice"] == ["6", "<5", "<5", "<5"]
    assert table["carol"] == ["<5", "0", "<5", "0"]


def test_table_csv_and_json_show_the_same_numbers(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """The FOI answer does not depend on the format chosen."""
    data = stats_json(capsysbinary, "--by", "site")
    csv_out = socialgate(capsysbinary, "audit", "stats", "--by", "site", "--format", "csv")
    table_out = socialgate(capsysbinary, "audit", "stats", "--by", "site")
    from_csv = {
        r[0]: tuple(int(v) for v in r[1:]) for r in list(csv.reader(io.StringIO(csv_out.text)))[1:]
    }
    from_table = {
        line.split()[0]: tuple(int(v) for v in line.split()[1:])
        for line in table_out.lines[2:]
        if line and not line.startswith("users holding")
    }
    assert from_csv == from_table == rows(data)
    assert "users holding an exemption in the period: 3" in table_out.text


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--by", "colour"], "--by"),
        (["--suppress-below", "1"], "--suppress-below"),
        (["--policy", "nowhere.yaml"], "nowhere.yaml"),
        (["--until", "2026-02-30"], "--until"),
    ],
)
def test_bad_input_exits_2(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes], args: list[str], named: str
) -> None:
    """Unknown --by, bad threshold, missing policy, impossible date: exit 2 naming it."""
    result = socialgate(capsysbinary, "audit", "stats", *args)
    assert result.code == 2
    assert named in result.err
