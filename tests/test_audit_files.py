"""Audit file names: which files make up a series and a trail, for the writer and every reader."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import pathlib

import pytest

from proxy_addons.audit import files
from proxy_addons.audit.chain import GENESIS, canonical, seal
from proxy_addons.audit.record import event_record
from proxy_addons.cli import audit_investigate, audit_verify
from proxy_addons.cli.main import main
from proxy_addons.errors import AuditError

STAMP = "20261125T100000123456Z"

# (file name, member of the series of audit.jsonl?)
MEMBERS = [
    ("audit.jsonl", True),
    (f"audit.jsonl.{STAMP}", True),  # the writer's rotation
    (f"audit.jsonl.{STAMP}-1", True),  # ... on a clash
    ("audit.jsonl.1", True),  # numbered rotation by an outside tool
    ("audit.jsonl.12", True),
    ("audit.jsonl.1.gz", True),
    (f"audit.jsonl.{STAMP}.gz", True),
    ("audit.jsonl.gz", True),
    ("audit.jsonl.key", False),
    ("audit.jsonl.lock", False),
    ("audit.jsonl.tmp", False),
    ("audit.jsonl.old", False),
    ("audit.jsonl.1.tmp", False),
    ("audit.jsonl.gz.1", False),
    (f"audit.jsonl.{STAMP}.1", False),
    ("audit.jsonl.20261125T1000Z", False),  # not the writer's stamp
    ("audit.jsonl.-1", False),
    ("audit.checkpoints", False),
    ("audit-2.jsonl", False),  # another live log: its own series
    ("audit-2.jsonl.1", False),
    ("admin-audit.jsonl", False),
    ("xaudit.jsonl", False),
]


@pytest.mark.parametrize(("name", "member"), MEMBERS, ids=[m[0] for m in MEMBERS])
def test_series_membership(tmp_path: pathlib.Path, name: str, member: bool) -> None:
    """A series is the live log, its stamped and numbered rotations, and those compressed."""
    live = tmp_path / "audit.jsonl"
    assert files.is_member(live, tmp_path / name) is member
    (tmp_path / name).write_text("")
    assert (tmp_path / name in files.series(live)) is member


# (file name, its live log, rotated or compressed)
LIVE = [
    ("audit.jsonl", "audit.jsonl", False),
    ("audit-w2.jsonl", "audit-w2.jsonl", False),
    (f"audit.jsonl.{STAMP}-3", "audit.jsonl", True),
    ("audit.jsonl.7.gz", "audit.jsonl", True),
    ("audit-20260201T000000.jsonl.gz", "audit-20260201T000000.jsonl", True),
    ("audit.jsonl.key", "audit.jsonl.key", False),
]


@pytest.mark.parametrize(("name", "live", "rotated"), LIVE, ids=[c[0] for c in LIVE])
def test_live_log_of_a_file(name: str, live: str, rotated: bool) -> None:
    path = pathlib.Path("logs") / name
    assert files.live_of(path) == pathlib.Path("logs") / live
    assert files.is_rotated(path) is rotated


def test_series_is_oldest_first_with_the_live_file_last(tmp_path: pathlib.Path) -> None:
    """Numbered (highest first), then stamped by time (clashes in order), then the live log."""
    names = [
        "audit.jsonl",
        f"audit.jsonl.{STAMP}-10",
        f"audit.jsonl.{STAMP}-2",
        f"audit.jsonl.{STAMP}",
        "audit.jsonl.20261124T100000000000Z",
        "audit.jsonl.1",
        "audit.jsonl.2.gz",
    ]
    for n in names:
        (tmp_path / n).write_text("")
    assert [p.name for p in files.series(tmp_path / "audit.jsonl")] == [
        "audit.jsonl.2.gz",
        "audit.jsonl.1",
        "audit.jsonl.20261124T100000000000Z",
        f"audit.jsonl.{STAMP}",
        f"audit.jsonl.{STAMP}-2",
        f"audit.jsonl.{STAMP}-10",
        "audit.jsonl",
    ]


def test_a_rotated_file_given_by_name_is_a_series_of_one(tmp_path: pathlib.Path) -> None:
    for n in ("audit.jsonl", f"audit.jsonl.{STAMP}", "audit.jsonl.1"):
        (tmp_path / n).write_text("")
    assert files.series(tmp_path / "audit.jsonl.1") == [tmp_path / "audit.jsonl.1"]
    assert files.series(tmp_path / "missing" / "audit.jsonl") == []


def test_the_writer_continues_only_from_its_own_rotations(tmp_path: pathlib.Path) -> None:
    """Numbered and compressed files are read by verify and search, never continued."""
    live = tmp_path / "audit.jsonl"
    assert files.last_rotation(live) is None
    for n in ("audit.jsonl.9", f"audit.jsonl.{STAMP}.gz", "audit.jsonl.20261124T100000000000Z"):
        (tmp_path / n).write_text("")
    assert files.last_rotation(live) == tmp_path / "audit.jsonl.20261124T100000000000Z"
    now = dt.datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=dt.UTC)
    first = files.rotated_name(live, now)
    assert first.name == f"audit.jsonl.{STAMP}"
    first.write_text("")
    assert files.rotated_name(live, now).name == f"audit.jsonl.{STAMP}-1"
    assert files.last_rotation(live) == first


# (file name, part of the trail a folder holds?)
TRAIL = [
    ("audit.jsonl", True),
    ("audit.jsonl.1", True),
    (f"audit.jsonl.{STAMP}", True),
    ("audit-20260301T000000.jsonl", True),
    ("audit-20260201T000000.jsonl.gz", True),
    ("audit-w2.jsonl", True),
    ("audit-w2.jsonl.3.gz", True),
    ("admin-audit.jsonl", True),
    (f"admin-audit.jsonl.{STAMP}", True),
    ("audit.checkpoints", False),
    ("admin-audit.checkpoints", False),
    ("audit.checkpoints.jsonl", False),
    ("audit.jsonl.key", False),
    ("audit.jsonl.lock", False),
    ("audit-w2.jsonl.tmp", False),
    ("audit-a.b.jsonl", False),  # a dotted tag would share a checkpoint file
    ("other.jsonl", False),
]


def test_trail_of_a_folder(tmp_path: pathlib.Path) -> None:
    """Every live log of the trail and its series; checkpoints, keys and others are left out."""
    for name, _ in TRAIL:
        (tmp_path / name).write_text("")
    (tmp_path / "audit-dir.jsonl").mkdir()
    assert [p.name for p in files.trail(tmp_path)] == sorted(n for n, ok in TRAIL if ok)
    assert files.trail(tmp_path / "missing") == []


@pytest.mark.parametrize(
    ("log", "checkpoints"),
    [
        ("audit.jsonl", "audit.checkpoints"),
        (f"audit.jsonl.{STAMP}", "audit.checkpoints"),
        ("audit.jsonl.1.gz", "audit.checkpoints"),
        ("admin-audit.jsonl", "admin-audit.checkpoints"),
        ("audit-w2.jsonl", "audit-w2.checkpoints"),
    ],
)
def test_checkpoint_file_beside_a_log(log: str, checkpoints: str) -> None:
    path = pathlib.Path("logs") / log
    assert files.default_checkpoints_path(path) == pathlib.Path("logs") / checkpoints
    assert checkpoints not in [name for name, in_trail in TRAIL if in_trail]


# --- verify and search read the same files -------------------------------------------

KEY = bytes(range(32))


def _chain(worker: str, n: int, start: int) -> list[str]:
    lines, prev = [], GENESIS
    for seq in range(1, n + 1):
        when = dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=start + seq)
        record = event_record(
            "reminder-acknowledged", f"{worker} {seq}", now=when, category=["web"], type_=["info"]
        )
        sealed = seal(KEY, record, worker=worker, seq=seq, prev=prev)
        prev = sealed["socialgate"]["chain"]["hash"]
        lines.append(canonical(sealed) + "\n")
    return lines


@pytest.fixture
def folder(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """logs/ with a rotated series (numbered, stamped, compressed), another worker, the admin
    chain, and files that are not logs; keys/ with the chain key."""
    logs = tmp_path / "logs"
    logs.mkdir()
    w1 = _chain("w1", 8, 0)
    (logs / "audit.jsonl.2.gz").write_bytes(gzip.compress("".join(w1[:2]).encode()))
    (logs / "audit.jsonl.1").write_text("".join(w1[2:4]))
    (logs / f"audit.jsonl.{STAMP}").write_text("".join(w1[4:6]))
    (logs / "audit.jsonl").write_text("".join(w1[6:]))
    (logs / "audit-w2.jsonl").write_text("".join(_chain("w2", 3, 100)))
    (logs / "admin-audit.jsonl").write_text("".join(_chain("admin", 2, 200)))
    for other in ("audit.jsonl.key", "audit.checkpoints.jsonl", "other.jsonl", "audit.jsonl.tmp"):
        (logs / other).write_text("not a log\n")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "audit-hmac.key").write_text(KEY.hex() + "\n")
    monkeypatch.chdir(tmp_path)
    return logs


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_verify_and_search_default_to_the_same_files(
    folder: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both commands' defaults are the folder's trail; verify checks every record search reads."""
    verify_files, _ = audit_verify._logs(())
    assert verify_files == audit_investigate._logs(())
    assert {p.name for p in verify_files} == {
        "audit.jsonl.2.gz",
        "audit.jsonl.1",
        f"audit.jsonl.{STAMP}",
        "audit.jsonl",
        "audit-w2.jsonl",
        "admin-audit.jsonl",
    }
    code, out = _run(capsys, "audit", "verify")
    assert code == 0, out
    assert "intact: 13 records in 6 files, 3 chains" in out
    code, out = _run(capsys, "audit", "search", "--format", "json", "--tz", "UTC")
    assert code == 0, out
    assert len([json.loads(line) for line in out.splitlines() if line.startswith("{")]) == 13


def test_a_damaged_compressed_file_is_damage_to_verify(
    folder: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gz = folder / "audit.jsonl.2.gz"
    gz.write_bytes(gz.read_bytes()[:-12])  # cut off before the end-of-stream marker
    code, out = _run(capsys, "audit", "verify")
    assert code == 1, out
    assert "audit.jsonl.2.gz:" in out


def test_no_trail_is_bad_usage(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AuditError, match="no audit log found in logs"):
        files.default_logs()
