"""`audit stats` reads canonical lines without parsing them: it must answer as the full parse.

Every equivalence test counts the same logs twice: through `fastscan` (what the
CLI does with a `LogReader`) and from the reader's fully parsed entries (the
original path), and compares the whole JSON answer, the problems reported
(text and order) and the lines read.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from proxy_addons.audit.chain import canonical
from proxy_addons.investigate import fastfields as ff
from proxy_addons.investigate import fastscan
from proxy_addons.investigate import stats as stats_mod
from proxy_addons.investigate.read import LogReader
from proxy_addons.investigate.timeparse import Period
from proxy_addons.policy.load import load_policy
from proxy_addons.policy.model import Policy
from tests.support.audit_scenario import SCENARIO, record, sealed_lines, write_logs, write_policy

LONDON = ZoneInfo("Europe/London")
BYS: list[str | None] = [None, *stats_mod.BY]


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_policy(str(write_policy(tmp_path_factory.mktemp("policy"))))


ALWAYS = Period()


def answers(
    paths: Sequence[pathlib.Path], by: str | None, policy: Policy, period: Period = ALWAYS
) -> tuple[Any, Any]:
    """(fast, full): each the stats JSON, the problems as printed, and the lines read."""

    def run(fast: bool) -> Any:
        reader = LogReader(list(paths), period=period)
        source = reader if fast else iter(list(reader))
        result = stats_mod.compute(source, by, LONDON, policy, period)
        data = stats_mod.to_json(result, period, "Europe/London", None, len(reader.problems))
        return data, [str(p) for p in reader.problems], reader.lines_read

    return run(True), run(False)


def assert_same(
    paths: Sequence[pathlib.Path], policy: Policy, period: Period = ALWAYS
) -> list[Any]:
    """Fast and full answers agree for every --by; returns the full answers."""
    out = []
    for by in BYS:
        fast, full = answers(paths, by, policy, period)
        assert fast == full, by
        out.append(full)
    return out


def line(rec: dict[str, Any]) -> bytes:
    return (canonical(rec) + "\n").encode("utf-8")


def access(i: int, **changes: Any) -> dict[str, Any]:
    """A canonical access record (the proxy's own builder) with fields changed or removed."""
    rec = record(SCENARIO[2 + i % 5], i)
    for path, value in changes.items():
        node = rec
        *parents, last = path.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        if value is DROP:
            node.pop(last, None)
        else:
            node[last] = value
    return rec


DROP = object()


def write(path: pathlib.Path, lines: Sequence[bytes]) -> pathlib.Path:
    path.write_bytes(b"".join(lines))
    return path


# --- the proxy's own logs -----------------------------------------------------------


def test_scenario_logs_give_the_full_parse_answer(tmp_path: pathlib.Path, policy: Policy) -> None:
    """Three sealed files (rotated series plus a second worker), every --by."""
    full = assert_same(write_logs(tmp_path), policy)
    assert full[0][0]["total"]["blocked_attempts"] > 0


PERIODS = [
    ("since", Period(since=dt.datetime(2026, 3, 29, tzinfo=dt.UTC))),
    ("until", Period(until=dt.datetime(2026, 3, 30, 7, 45, tzinfo=dt.UTC))),
    (
        "both",
        Period(dt.datetime(2026, 3, 28, tzinfo=dt.UTC), dt.datetime(2026, 10, 1, tzinfo=dt.UTC)),
    ),
]


@pytest.mark.parametrize(("name", "period"), PERIODS, ids=[p[0] for p in PERIODS])
def test_a_period_gives_the_full_parse_answer(
    tmp_path: pathlib.Path, policy: Policy, name: str, period: Period
) -> None:
    """--since / --until select the same records on both paths."""
    full = assert_same(write_logs(tmp_path), policy, period)
    assert full[0][0]["total"]["blocked_attempts"] + full[0][0]["other_events"] > 0


# --- unusual values in canonical lines ------------------------------------------------

VALUES: list[tuple[str, dict[str, Any]]] = [
    ("unicode user", {"user__name": "Zoë Ångström 李"}),
    ("quote in user", {"user__name": 'o"brien'}),
    ("backslash in user", {"user__name": "DOMAIN\\bob"}),
    ("newline escaped in user", {"user__name": "a\nb"}),
    ("empty user", {"user__name": ""}),
    ("no user name", {"user__name": DROP}),
    ("user not an object", {"user": "alice"}),
    ("numeric user", {"user__name": 7}),
    ("groups", {"socialgate__groups": ["press-office", "Überwachung"]}),
    ("groups with null", {"socialgate__groups": [None, "press-office", 3]}),
    ("groups a string", {"socialgate__groups": "abc"}),
    ("groups null", {"socialgate__groups": None}),
    ("no site", {"socialgate__site": DROP}),
    ("empty site", {"socialgate__site": ""}),
    ("site null", {"socialgate__site": None}),
    ("no site nor domain", {"socialgate__site": DROP, "url__domain": DROP}),
    ("domain a number", {"socialgate__site": DROP, "url__domain": 443}),
    ("category null", {"socialgate__category": None}),
    ("category an object", {"socialgate__category": {"name": "x"}}),
    ("exemption empty", {"socialgate__exemption_id": ""}),
    ("exemption a number", {"socialgate__exemption_id": 12}),
    ("exemption true", {"socialgate__exemption_id": True}),
    ("outcome other", {"socialgate__outcome": "maybe"}),
    ("outcome a number", {"socialgate__outcome": 1}),
    ("outcome escaped", {"socialgate__outcome": "blocked\u00e9"}),
    ("no outcome", {"socialgate__outcome": DROP}),
    ("socialgate a list", {"socialgate": ["outcome", "blocked"]}),
    ("float port", {"url__port": 443.5}),
    ("big negative number", {"url__port": -(10**40)}),
    ("exponent", {"url__port": 1.5e-300}),
    ("list of objects", {"extra": [{"a": 1}, [2, [3]], {}]}),
    ("key before @timestamp", {"!first": {"socialgate": {"outcome": "blocked"}}}),
    ("nested socialgate", {"rule__socialgate": {"outcome": "allowed"}}),
    ("timestamp not canonical", {"@timestamp": "2026-03-30T10:00:00+00:00"}),
    ("timestamp no zone", {"@timestamp": "2026-03-30T10:00:00"}),
    ("timestamp a number", {"@timestamp": 1774864800}),
    ("no timestamp", {"@timestamp": DROP}),
]


@pytest.mark.parametrize(("name", "changes"), VALUES, ids=[v[0] for v in VALUES])
def test_unusual_values_give_the_full_parse_answer(
    tmp_path: pathlib.Path, policy: Policy, name: str, changes: dict[str, Any]
) -> None:
    """The changed record between ordinary ones, twice (after its layout could be learnt)."""
    odd = line(access(3, **changes))
    lines = [line(access(i)) for i in range(6)]
    path = write(tmp_path / "audit.jsonl", [*lines[:3], odd, *lines[3:], odd, lines[0]])
    assert_same([path], policy)


# --- lines that are not in the writer's form -------------------------------------------

BASE = access(1)


def spaced(rec: dict[str, Any]) -> bytes:
    return (json.dumps(rec) + "\n").encode()


NOT_CANONICAL: list[tuple[str, Callable[[], bytes]]] = [
    ("default separators", lambda: spaced(BASE)),
    ("keys unsorted", lambda: (json.dumps(dict(reversed(BASE.items()))) + "\n").encode()),
    (
        "ascii escapes",
        lambda: (json.dumps(access(2, user__name="Zoë"), sort_keys=True) + "\n").encode(),
    ),
    ("escaped key", lambda: line(BASE).replace(b'"outcome"', b'"outc\\u006fme"')),
    ("escaped value", lambda: line(BASE).replace(b'"blocked"', b'"bl\\u006fcked"')),
    (
        "duplicate outcome",
        lambda: line(BASE).replace(b'"outcome":"', b'"outcome":"allowed","outcome":"'),
    ),
    ("duplicate user", lambda: line(BASE)[:-2] + b',"user":{"name":"mallory"}}\n'),
    ("NaN", lambda: line(BASE).replace(b'"port":443', b'"port":NaN')),
    ("Infinity", lambda: line(BASE).replace(b'"port":443', b'"port":-Infinity')),
    ("huge integer", lambda: line(BASE).replace(b'"port":443', b'"port":' + b"9" * 5000)),
    ("leading zero", lambda: line(BASE).replace(b'"port":443', b'"port":0443')),
    ("crlf", lambda: line(BASE)[:-1] + b"\r\n"),
    ("trailing space", lambda: line(BASE)[:-1] + b" \n"),
    (
        "tab inside a string",
        lambda: line(BASE).replace(b"social networking", b"social\tnetworking"),
    ),
    (
        "nul inside a string",
        lambda: line(BASE).replace(b"social networking", b"social\x00networking"),
    ),
    ("latin-1 byte", lambda: line(BASE).replace(b"social networking", b"social\xe9networking")),
    ("encoded surrogate", lambda: line(BASE).replace(b"social networking", b"social\xed\xa0\x80")),
    ("bom", lambda: b"\xef\xbb\xbf" + line(BASE)),
    ("truncated", lambda: line(BASE)[:300]),
    ("two run together", lambda: line(BASE)[:300] + line(BASE)),
    ("empty line", lambda: b"\n"),
    ("an array", lambda: b"[1, 2, 3]\n"),
    ("deeply nested", lambda: line(BASE)[:-2] + b',"z":' + b"[" * 5000 + b"]" * 5000 + b"}\n"),
    ("seconds 60", lambda: line(access(1, **{"@timestamp": "2026-03-27T09:00:60.000000Z"}))),
    ("hour 24", lambda: line(access(1, **{"@timestamp": "2026-03-27T24:00:00.000000Z"}))),
]


@pytest.mark.parametrize(("name", "make"), NOT_CANONICAL, ids=[c[0] for c in NOT_CANONICAL])
def test_lines_not_in_canonical_form_give_the_full_parse_answer(
    tmp_path: pathlib.Path, policy: Policy, name: str, make: Callable[[], bytes]
) -> None:
    """Hand-written, escaped, damaged or odd lines among learnt canonical ones."""
    odd = make()
    lines = [line(access(i)) for i in range(6)]
    path = write(tmp_path / "audit.jsonl", [*lines[:3], odd, *lines[3:], odd, lines[1]])
    bys = BYS if b":60." not in odd and b"T24:" not in odd else [None, "site"]
    for by in bys:  # a second of 60 fails in LocalTime for --by month on both paths alike
        fast, full = answers([path], by, policy)
        assert fast == full, by


def test_a_file_without_final_newline_gives_the_full_parse_answer(
    tmp_path: pathlib.Path, policy: Policy
) -> None:
    """The last record, complete but unterminated, is counted on both paths."""
    lines = [line(access(i)) for i in range(4)]
    path = write(tmp_path / "audit.jsonl", [*lines, lines[2][:-1]])
    full = assert_same([path], policy)
    assert full[0][0]["total"]["blocked_attempts"] + full[0][0]["total"]["allowed_requests"] == 5


# --- damage inside an otherwise matching line -------------------------------------------

REPLACEMENTS = [b'"', b"\\", b"\x00", b"}", b"]", b",", b":", b"1", b"n", b" ", b"\xff", b""]


@pytest.mark.parametrize("new", REPLACEMENTS, ids=[repr(r) for r in REPLACEMENTS])
def test_a_byte_changed_anywhere_gives_the_full_parse_answer(
    tmp_path: pathlib.Path, policy: Policy, new: bytes
) -> None:
    """Each byte of a canonical line in turn replaced (or removed), among learnt lines."""
    good = [line(access(i)) for i in range(5)]
    target = good[1]
    lines = list(good)
    for pos in range(0, len(target) - 1):
        lines.append(target[:pos] + new + target[pos + 1 :])
        lines.append(good[pos % 5])
    path = write(tmp_path / "audit.jsonl", lines)
    fast, full = answers([path], "site", policy)
    assert fast == full
    fast, full = answers([path], "group", policy)
    assert fast == full
    assert full[1], "some changes must damage the line"


# --- several files: problems in the reader's order --------------------------------------


def test_problems_in_several_files_are_reported_in_the_merged_order(
    tmp_path: pathlib.Path, policy: Policy
) -> None:
    """Damaged lines and a step back in time in two workers' files, interleaved as the reader."""
    lines = sealed_lines(SCENARIO)
    w1 = [s.encode() for s in lines["w1"]]
    w2 = [s.encode() for s in lines["w2"]]
    a = write(tmp_path / "a.jsonl", [b"junk\n", w1[0], w1[1], b"{}\n", *w1[2:], w1[0], b"tail"])
    b = write(tmp_path / "b.jsonl", [w2[0], b"[1]\n", *w2[1:4], w2[0][:50] + b"\n", *w2[4:]])
    full = assert_same([a, b], policy)
    problems = full[0][1]
    assert len(problems) == 6
    assert {p.split(":")[0] for p in problems} == {str(a), str(b)}


def test_gzip_logs_give_the_full_parse_answer(tmp_path: pathlib.Path, policy: Policy) -> None:
    """A compressed rotated member, truncated too, reads as the reader reads it."""
    import gzip

    logs = write_logs(tmp_path / "logs")
    gz = tmp_path / "audit.jsonl.1.gz"
    gz.write_bytes(gzip.compress(logs[0].read_bytes()))
    cut = tmp_path / "audit.jsonl.2.gz"
    cut.write_bytes(gzip.compress(logs[1].read_bytes())[:-30])
    full = assert_same([gz, cut, logs[2]], policy)
    assert any("cannot read further" in p for p in full[0][1])


# --- the fast path is taken -------------------------------------------------------------


def counted(paths: Sequence[pathlib.Path]) -> tuple[int, int]:
    """(lines parsed in full, lines counted from their layout)."""
    parsed: list[str] = []
    counts: dict[tuple[Any, ...], int] = {}
    layouts = ff.Layouts((ff.TS, ff.OUTCOME, ff.USER, ff.EXEMPTION, ff.SITE, ff.DOMAIN))
    counter = fastscan.Counter(layouts, counts, lambda r, k: parsed.append(k), lambda: None)
    fastscan.scan(LogReader(list(paths)), counter)
    return len(parsed), sum(counts.values())


def test_only_a_layouts_first_line_is_parsed(tmp_path: pathlib.Path) -> None:
    """Allowed and blocked accesses and events: the rest are counted without parsing."""
    logs = write_logs(tmp_path)
    total = sum(len(p.read_bytes().splitlines()) for p in logs)
    full, fast = counted(logs)
    assert full + fast == total
    assert fast > full


@pytest.mark.parametrize(
    ("name", "odd"),
    [
        ("escaped", line(access(1, user__name='o"brien'))),
        ("spaced", spaced(BASE)),
        ("tab between members", line(BASE).replace(b',"ecs":', b',\t"ecs":')),
    ],
)
def test_lines_a_layout_cannot_vouch_for_are_parsed(
    tmp_path: pathlib.Path, name: str, odd: bytes
) -> None:
    """Escapes, other spellings and control bytes (valid ones) always take the full parse."""
    lines = [line(access(i)) for i in range(5)]
    plain_run = counted([write(tmp_path / "plain.jsonl", [*lines, *lines])])
    with_odd = counted([write(tmp_path / "odd.jsonl", [*lines, odd, odd, *lines])])
    assert with_odd == (plain_run[0] + 2, plain_run[1])


def test_field_values_are_read_from_a_matching_line() -> None:
    """The layout's groups hold the raw JSON text of the wanted fields."""
    layouts = ff.Layouts((ff.TS, ff.OUTCOME, ff.USER, ff.EXEMPTION, ff.SITE, ff.GROUPS))
    first = line(access(0, user__name="Zoë"))
    layouts.learn(first, json.loads(first))
    rec = access(5, user__name="李", socialgate__groups=["a", "b"])
    hit = layouts.match(line(rec))
    assert hit is not None
    ts, texts = hit
    assert ts.decode() == rec["@timestamp"]
    names = (ff.OUTCOME, ff.USER, ff.EXEMPTION, ff.SITE, ff.GROUPS)
    assert ff.partial_record(names, texts) == {
        "socialgate": {
            k: rec["socialgate"][k] for k in ("outcome", "exemption_id", "site", "groups")
        },
        "user": {"name": "李"},
    }
