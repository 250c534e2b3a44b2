"""Reading audit logs: merge order, rotated and compressed files, damaged lines."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import pathlib

import pytest

from proxy_addons.audit.files import default_logs
from proxy_addons.errors import AuditError, ConfigError
from proxy_addons.investigate import progress as progress_mod
from proxy_addons.investigate import read as read_mod
from proxy_addons.investigate.read import LogReader, Prefilter
from proxy_addons.investigate.timeparse import parse_record_time, parse_when
from tests.support.audit_scenario import SCENARIO, write_logs, write_policy
from tests.support.cli import socialgate

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def logs(tmp_path: pathlib.Path) -> list[pathlib.Path]:
    return write_logs(tmp_path / "logs")


# --- discovery and merging -------------------------------------------------------


def test_default_logs_find_the_rotated_siblings_but_not_checkpoints_or_keys(
    tmp_path: pathlib.Path,
) -> None:
    """audit.jsonl, audit.jsonl.N and audit-<time>.jsonl(.gz) are read; other files are not."""
    names = [
        "audit.jsonl",
        "audit.jsonl.1",
        "audit.jsonl.2",
        "audit-20260301T000000.jsonl",
        "audit-20260201T000000.jsonl.gz",
        "audit.checkpoints.jsonl",
        "audit.jsonl.key",
        "other.jsonl",
    ]
    for n in names:
        (tmp_path / n).write_text("")
    found = {p.name for p in default_logs(tmp_path / "audit.jsonl")}
    assert found == set(names[:5])


def test_files_are_merged_in_time_order_whatever_their_order_on_the_command_line(
    logs: list[pathlib.Path],
) -> None:
    """Three files (rotated series plus a second worker) come out as one timeline."""
    entries = list(LogReader(list(reversed(logs))))
    assert len(entries) == len(SCENARIO)
    assert [e.key for e in entries] == sorted(e.key for e in entries)


def test_gzip_rotated_files_are_read(tmp_path: pathlib.Path, logs: list[pathlib.Path]) -> None:
    """A compressed member of the series reads like the plain one."""
    gz = tmp_path / "audit.jsonl.1.gz"
    gz.write_bytes(gzip.compress(logs[0].read_bytes()))
    plain = [e.raw for e in LogReader([logs[0]])]
    assert [e.raw for e in LogReader([gz])] == plain
    assert plain


def test_unreadable_file_is_bad_input(tmp_path: pathlib.Path) -> None:
    """A missing file stops the command with its name (exit 2 in the CLI)."""
    with pytest.raises(AuditError, match=r"nope\.jsonl: cannot read audit log"):
        list(LogReader([tmp_path / "nope.jsonl"]))


# --- damaged lines -------------------------------------------------------------------

# (bad line, message when parsed, message when a prefilter skips it unparsed: framing only)
DAMAGE = [
    ("garbage", b"this is not json\n", "not valid JSON", "not valid JSON"),
    ("not an object", b"[1, 2, 3]\n", "not a JSON object", "not a JSON object"),
    ("no timestamp", b'{"message": "hello"}\n', "no valid @timestamp", "unexpected record layout"),
    (
        "zone-less timestamp",
        b'{"@timestamp": "2026-03-28T10:00:00"}\n',
        "no valid @timestamp",
        None,
    ),
    ("empty line", b"\n", "empty line", "empty line"),
    (
        "not UTF-8",
        b'{"@timestamp": "2026-03-28T10:00:00Z", "x": "\xff"}\n',
        "not valid JSON (bytes that are not UTF-8",
        None,
    ),
]


@pytest.mark.parametrize(
    ("bad", "message", "unparsed"), [c[1:] for c in DAMAGE], ids=[c[0] for c in DAMAGE]
)
def test_damaged_line_is_reported_with_file_and_line_and_the_rest_is_read(
    logs: list[pathlib.Path], bad: bytes, message: str, unparsed: str | None
) -> None:
    """The damaged line is named (file:line: why); every good record is still returned."""
    target = logs[2]
    lines = target.read_bytes().splitlines(keepends=True)
    target.write_bytes(b"".join([*lines[:2], bad, *lines[2:]]))
    reader = LogReader(logs)
    assert len(list(reader)) == len(SCENARIO)
    assert len(reader.problems) == 1
    assert str(reader.problems[0]).startswith(f"{target}:3: {message}")


@pytest.mark.parametrize(
    ("bad", "message", "unparsed"), [c[1:] for c in DAMAGE], ids=[c[0] for c in DAMAGE]
)
def test_lines_skipped_by_the_prefilter_are_still_checked_for_framing(
    logs: list[pathlib.Path], bad: bytes, message: str, unparsed: str | None
) -> None:
    """Unparsed lines that are not one whole record are reported too (framing check)."""
    target = logs[2]
    lines = target.read_bytes().splitlines(keepends=True)
    target.write_bytes(b"".join([*lines[:2], bad, *lines[2:]]))
    reader = LogReader(logs, prefilter=Prefilter(((b"no line has this",),)))
    assert list(reader) == []
    if unparsed is None:  # framed like a record: only a parse would find the damage
        assert reader.problems == []
    else:
        assert len(reader.problems) == 1
        assert str(reader.problems[0]).startswith(f"{target}:3: {unparsed}")


def test_partially_written_tail_and_a_record_glued_to_it_are_reported(
    logs: list[pathlib.Path],
) -> None:
    """A crash mid-write leaves half a line; the next write glues a whole record to it."""
    target = logs[2]
    lines = target.read_bytes().splitlines(keepends=True)
    torn = lines[1][:50]
    target.write_bytes(b"".join([lines[0], torn + lines[2], *lines[3:], lines[1][:40]]))
    reader = LogReader(logs)
    got = list(reader)
    assert len(got) == len(SCENARIO) - 2  # the torn one and the glued one are lost
    assert [str(p) for p in reader.problems] == [
        f"{target}:2: two records run together (a partial write followed by a new record)",
        f"{target}:{len(lines)}: partially written record (no end of line)",
    ]


def test_damaged_lines_are_warned_on_stderr_and_search_exits_0(
    tmp_path: pathlib.Path,
    logs: list[pathlib.Path],
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CLI prints one warning per damaged line and still prints every good record."""
    write_policy(tmp_path / "policies")
    monkeypatch.chdir(tmp_path)
    with logs[0].open("ab") as fh:
        fh.write(b"garbage\n")
    result = socialgate(capsysbinary, "audit", "search", "--format", "json", "--user", "alice")
    assert result.code == 0
    assert len(result.lines) == 11
    n = len(logs[0].read_bytes().splitlines())
    assert f"warning: logs/audit.jsonl.1:{n}: not valid JSON" in result.err


def test_out_of_order_file_is_reported_once(tmp_path: pathlib.Path) -> None:
    """A file whose clock went backwards is named: the merged order may be off there."""
    lines = [
        json.dumps({"@timestamp": t}) + "\n"
        for t in (
            "2026-03-28T10:00:00.000000Z",
            "2026-03-28T09:00:00.000000Z",
            "2026-03-28T08:00:00.000000Z",
        )
    ]
    p = tmp_path / "audit.jsonl"
    p.write_text("".join(lines))
    reader = LogReader([p])
    assert len(list(reader)) == 3
    assert len(reader.problems) == 1
    assert reader.problems[0].line == 2


# --- time values ----------------------------------------------------------------------

WHEN = [
    ("date", "2026-03-29", False, "2026-03-29T00:00:00+00:00"),  # GMT still
    ("date as until covers the day", "2026-03-29", True, "2026-03-29T23:00:00+00:00"),  # BST
    ("local time after spring change", "2026-03-29T12:00", False, "2026-03-29T11:00:00+00:00"),
    ("explicit zone", "2026-03-29T12:00Z", False, "2026-03-29T12:00:00+00:00"),
    ("days", "30d", False, "2026-10-26T12:00:00+00:00"),
    ("hours", "12h", False, "2026-11-25T00:00:00+00:00"),
    ("weeks", "2w", False, "2026-11-11T12:00:00+00:00"),
]


@pytest.mark.parametrize(
    ("text", "end", "expected"), [c[1:] for c in WHEN], ids=[c[0] for c in WHEN]
)
def test_when_values_are_read_in_the_display_zone(text: str, end: bool, expected: str) -> None:
    """Dates and naive times are London time; ages count back from now."""
    from zoneinfo import ZoneInfo

    got = parse_when("--since", text, ZoneInfo("Europe/London"), NOW, end=end)
    assert got.isoformat() == expected


@pytest.mark.parametrize("text", ["yesterday", "30 days", "2026-13-01", "-5d"])
def test_unreadable_when_names_the_option(text: str) -> None:
    """A value that is neither ISO nor an age is a ConfigError naming the option."""
    with pytest.raises(ConfigError, match="--until"):
        parse_when("--until", text, dt.UTC, NOW, end=True)


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("2026-03-28T10:00:00.000000Z", "2026-03-28T10:00:00.000000Z"),
        ("2026-03-28T11:00:00+01:00", "2026-03-28T10:00:00.000000Z"),
        ("2026-03-28T10:00:00Z", "2026-03-28T10:00:00.000000Z"),
        ("2026-03-28T10:00:00", None),
        (1774692000, None),
    ],
)
def test_record_timestamps_become_one_canonical_key(value: object, key: str | None) -> None:
    """Other spellings of a UTC instant merge correctly; zone-less times are refused."""
    assert parse_record_time(value) == key


# --- progress bar -----------------------------------------------------------------------


class FakeStderr(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("tty", "drawn"), [(True, True), (False, False)], ids=["terminal", "piped"]
)
def test_progress_bar_only_on_a_terminal(
    logs: list[pathlib.Path], tty: bool, drawn: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long read draws a bar on a terminal's stderr and nothing when stderr is piped."""
    monkeypatch.setattr(progress_mod, "_MIN_SECONDS", 0.0)
    monkeypatch.setattr(read_mod, "_PROGRESS_EVERY", 1)
    stream = FakeStderr(tty)
    console = progress_mod.StderrConsole(stream)
    reader = LogReader(logs, progress_factory=console.progress)
    it = iter(reader)
    next(it)
    if console.bar is not None:
        console.bar.started -= 10  # as if the read had been running for a while
    list(it)
    assert ("reading audit logs [" in stream.getvalue()) is drawn
    assert stream.getvalue().endswith("\r\033[K") is drawn  # the bar is cleared at the end
