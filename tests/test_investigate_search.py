"""`socialgate audit search` over generated logs with known content (support/audit_scenario.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import pathlib

import pytest

from tests.support.audit_scenario import (
    SCENARIO,
    Ev,
    proxy_host_workdir,
    ref,
    write_logs,
)
from tests.support.cli import Result, socialgate


@pytest.fixture
def case(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    return proxy_host_workdir(tmp_path, monkeypatch)


def search(capsys: pytest.CaptureFixture[bytes], *args: str) -> Result:
    return socialgate(capsys, "audit", "search", "--format", "json", *args)


def picked(result: Result) -> list[str]:
    """Scenario numbers of the records printed (refs of accesses, actions of other events)."""
    out = []
    for line in result.lines:
        r = json.loads(line)
        sg = r["socialgate"]
        out.append(sg["ref"] if "ref" in sg else r["event"]["action"])
    return out


def refs(*numbers: int) -> list[str]:
    return [ref(i) if SCENARIO[i].outcome else SCENARIO[i].action for i in numbers]


def in_time_order(*numbers: int) -> list[str]:
    return refs(*sorted(numbers, key=lambda i: SCENARIO[i].when))


# --- filters: exact records selected ------------------------------------------

FILTER_CASES = [
    (
        "alice: her accesses and the grant about her",
        ["--user", "alice"],
        (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 21),
    ),
    ("alice blocked", ["--user", "alice", "--outcome", "blocked"], (3, 4, 5, 8, 9, 10)),
    ("site matches its subdomains", ["--site", "x.com"], (2, 3, 4, 5, 6, 7, 9, 10, 12, 13, 20)),
    ("subdomain only", ["--site", "api.x.com"], (7,)),
    ("site spelled in capitals with a dot", ["--site", "M.Facebook.COM."], (15,)),
    ("facebook", ["--site", "facebook.com"], (8, 14, 15, 16, 17, 18, 19)),
    (
        "group from the policy and the records",
        ["--group", "press-office"],
        (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 21),
    ),
    ("category excludes other events", ["--category", "social_networking"], tuple(range(2, 21))),
    ("allowed", ["--outcome", "allowed"], (2, 6, 7, 11, 12, 17)),
    (
        "both outcomes = every access",
        ["--outcome", "allowed", "--outcome", "blocked"],
        tuple(range(2, 21)),
    ),
    ("reason", ["--reason", "outside-schedule"], (3, 4, 5, 9, 10, 13)),
    ("exemption on accesses", ["--exemption", "EX-DAVE"], (17, 18, 19)),
    ("exemption on an admin event", ["--exemption", "EX-ALICE-2"], (21,)),
    ("two users", ["--user", "carol", "--user", "dave"], (14, 15, 16, 17, 18, 19)),
    (
        "user, site and date together",
        ["--user", "carol", "--site", "facebook.com", "--since", "2026-03-28"],
        (15, 16),
    ),
    # London day 30 March (BST) starts at 23:00 UTC on the 29th: carol's 23:30 UTC is in it.
    ("a London day", ["--since", "2026-03-30", "--until", "2026-03-30"], (6, 7, 8, 13, 16, 19, 21)),
    (
        "the same day in UTC",
        ["--tz", "UTC", "--since", "2026-03-30", "--until", "2026-03-30"],
        (6, 7, 8, 13, 19, 21),
    ),
    # 01:00 London on 25 October is 00:00 UTC (BST); 02:00 is 02:00 UTC (GMT): both 01:30s.
    (
        "the repeated autumn hour",
        ["--since", "2026-10-25T01:00", "--until", "2026-10-25T02:00"],
        (9, 10),
    ),
    ("explicit offset", ["--since", "2026-10-25T01:30+00:00", "--until", "2026-10-25"], (10,)),
    ("nothing matches", ["--user", "nobody"], ()),
]


@pytest.mark.parametrize(
    ("args", "expected"), [c[1:] for c in FILTER_CASES], ids=[c[0] for c in FILTER_CASES]
)
def test_filters_select_exactly_the_expected_records(
    case: pathlib.Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    args: list[str],
    expected: tuple[int, ...],
) -> None:
    """Each filter (and combination) returns exactly the known records, in time order."""
    result = search(capsysbinary, *args)
    assert result.code == 0, result.err
    assert picked(result) == in_time_order(*expected)


def test_no_filter_returns_every_record_of_every_file_in_time_order(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Default logs (rotated series and the other worker's file) are all read and merged."""
    result = search(capsysbinary)
    assert result.code == 0
    assert picked(result) == in_time_order(*range(len(SCENARIO)))
    stamps = [json.loads(line)["@timestamp"] for line in result.lines]
    assert stamps == sorted(stamps)


def test_json_output_is_the_original_lines_byte_for_byte(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Every printed line is an input line, unchanged (chain fields included)."""
    originals = set()
    for p in (case / "logs").iterdir():
        originals |= set(p.read_bytes().splitlines(keepends=True))
    result = search(capsysbinary, "--user", "alice")
    printed = result.out.splitlines(keepends=True)
    assert len(printed) == 11
    assert set(printed) <= originals


def test_explicit_files_limit_the_search(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Logs named as arguments are the only ones read; a file named twice is read once."""
    w2 = [i for i, e in enumerate(SCENARIO) if e.worker == "w2"]
    result = search(capsysbinary, "logs/audit-w2.jsonl", "logs/audit-w2.jsonl")
    assert picked(result) == in_time_order(*w2)


# --- table and CSV ---------------------------------------------------------------


@pytest.mark.parametrize("columns", [80, 100, 160])
def test_table_fits_the_terminal(
    case: pathlib.Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
    columns: int,
) -> None:
    """No table line is wider than the terminal; one row per record plus the header."""
    monkeypatch.setenv("COLUMNS", str(columns))
    result = socialgate(capsysbinary, "audit", "search", "--user", "alice")
    assert result.code == 0
    assert len(result.lines) == 1 + 11
    assert max(len(line) for line in result.lines) <= columns
    assert "11 record(s) matched" in result.err


def test_table_shows_local_time_with_zone_so_the_autumn_hour_is_unambiguous(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """The two 01:30s of 25 October read BST then GMT (policy time zone Europe/London)."""
    result = socialgate(
        capsysbinary, "audit", "search", "--since", "2026-10-25", "--until", "2026-10-25"
    )
    rows = result.lines[1:]
    assert [r[:23] for r in rows] == ["2026-10-25 01:30:00 BST", "2026-10-25 01:30:00 GMT"]


def test_csv_has_one_row_per_record_with_the_fields(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """CSV rows carry user, outcome, reason, domain, exemption and where the line came from."""
    result = socialgate(capsysbinary, "audit", "search", "--format", "csv", "--user", "dave")
    rows = list(csv.DictReader(io.StringIO(result.text)))
    assert [(r["user"], r["outcome"], r["reason"], r["method"]) for r in rows] == [
        ("dave", "allowed", "exemption", "GET"),
        ("dave", "blocked", "read-only", "POST"),
        ("dave", "blocked", "expired", "GET"),
    ]
    assert rows[2]["local_time"] == "2026-03-30T11:00:00+01:00"
    assert rows[2]["file"] == "logs/audit-w2.jsonl"
    assert rows[0]["exemption_id"] == "EX-DAVE"


def test_csv_neutralises_formulas_from_request_paths(
    tmp_path: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """A path starting with '=' cannot run as a spreadsheet formula."""
    logs = write_logs(
        tmp_path,
        [
            Ev(
                "2026-03-02T10:00:00",
                "w1",
                "eve",
                "x.com",
                "blocked",
                "no-exemption",
                path='=HYPERLINK("http://evil")',
            )
        ],
    )
    result = socialgate(
        capsysbinary, "audit", "search", "--tz", "UTC", "--format", "csv", *map(str, logs)
    )
    row = next(csv.DictReader(io.StringIO(result.text)))
    assert row["path"].startswith("'=")


# --- relative times --------------------------------------------------------------


def test_relative_since_counts_back_from_now(
    tmp_path: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """--since 30d keeps a record 10 days old and drops one 40 days old."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)
    old = Ev(
        (now - dt.timedelta(days=40)).isoformat(), "w1", "old", "x.com", "blocked", "no-exemption"
    )
    new = Ev(
        (now - dt.timedelta(days=10)).isoformat(), "w1", "new", "x.com", "blocked", "no-exemption"
    )
    logs = write_logs(tmp_path, [old, new])
    result = socialgate(
        capsysbinary,
        "audit",
        "search",
        "--tz",
        "UTC",
        "--since",
        "30d",
        "--format",
        "json",
        *map(str, logs),
    )
    assert [json.loads(line)["user"]["name"] for line in result.lines] == ["new"]


# --- bad input: exit 2, one line ---------------------------------------------------

BAD_INPUT = [
    ("bad date", ["--since", "last tuesday"], "--since"),
    ("until before since", ["--since", "2026-03-30", "--until", "2026-03-01"], "--until"),
    ("unknown outcome", ["--outcome", "maybe"], "--outcome"),
    ("unknown zone", ["--tz", "Mars/Olympus"], "--tz"),
    ("missing log", ["logs/nope.jsonl"], "nope.jsonl"),
    ("not a host", ["--site", "exa mple.com"], "--site"),
    ("group without the policy", ["--group", "g", "--policy", "missing.yaml"], "missing.yaml"),
]


@pytest.mark.parametrize(
    ("args", "named"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_exits_2_with_one_line_naming_it(
    case: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes], args: list[str], named: str
) -> None:
    """Bad usage or input: exit status 2, a message naming the option or file, no traceback."""
    result = socialgate(capsysbinary, "audit", "search", *args)
    assert result.code == 2
    assert named in result.err
    assert "Traceback" not in result.err


def test_no_logs_at_the_default_place_exits_2(
    tmp_path: pathlib.Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without arguments and without logs/audit.jsonl the user is told where it looked."""
    monkeypatch.chdir(tmp_path)
    result = socialgate(capsysbinary, "audit", "search", "--tz", "UTC")
    assert result.code == 2
    assert "logs/audit.jsonl" in result.err
