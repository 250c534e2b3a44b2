"""The chain writer: restart and rotation continuity, durability modes, fail-closed on errors."""

from __future__ import annotations

import datetime as dt
import errno
import itertools
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from proxy_addons.audit.files import rotated_name
from proxy_addons.audit.writer import ChainWriter
from proxy_addons.errors import AuditError, AuditUnavailable
from tests.support.audit_env import Env, rec


@pytest.fixture
def env(tmp_path: pathlib.Path) -> Env:
    return Env(tmp_path)


def records(path: pathlib.Path) -> list[dict[str, Any]]:
    """The complete records of a log file (a torn line is skipped)."""
    out: list[dict[str, Any]] = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def chain(r: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = r["socialgate"]["chain"]
    return c


def submit(w: ChainWriter, i: int) -> None:
    fut = w.submit(rec(i))
    assert fut is not None
    fut.result(timeout=10)


# --- continuity -----------------------------------------------------------------


def test_restart_continues_chain(env: Env) -> None:
    """A second run links its first record to the last record of the first run."""
    env.write(3)
    env.write(3)
    rs = records(env.log)
    assert [chain(r)["seq"] for r in rs] == list(range(1, 11))
    assert chain(rs[5])["prev"] == chain(rs[4])["hash"]
    assert "break" not in chain(rs[5])
    assert env.verify().ok


def test_unclean_previous_run_is_recorded(env: Env) -> None:
    """A start after a run that never wrote audit-stopped says so."""
    w = env.writer()
    submit(w, 1)
    w.close(None)  # stops without an audit-stopped record, like a crash
    env.write(0)
    started = [r for r in records(env.log) if r["event"]["action"] == "reminder-acknowledged"]
    assert started[-2]["socialgate"]["previous_shutdown"] == "unclean"


def test_torn_tail_recovered(env: Env) -> None:
    """An incomplete last line is kept; the new segment links to the last good record."""
    env.write(2)
    last = records(env.log)[-1]
    with env.log.open("ab") as fh:
        fh.write(b'{"@timestamp":"2026-11-25T10:')
    env.write(1)
    first_new = records(env.log)[len(records(env.log)) - 3]
    assert chain(first_new)["prev"] == chain(last)["hash"]
    assert chain(first_new)["break"]["reason"] == "torn-tail"
    report = env.verify()
    assert report.ok, report.problems
    assert [n.line for n in report.notes if "damaged line" in n.message] == [5]


def test_rotation_by_size_continues_chain(env: Env) -> None:
    """Rotated files link up; the old file ends with audit-rotated naming its new name."""
    env.write(20, rotate_bytes=1500)
    files = env.files()
    assert len(files) >= 3
    assert all(f.name.startswith("audit.jsonl.") for f in files[:-1])
    for older, newer in itertools.pairwise(files):
        tail, head = records(older)[-1], records(newer)[0]
        assert tail["event"]["action"] == "audit-rotated"
        assert tail["socialgate"]["rotated_to"] == older.name
        assert chain(head)["prev"] == chain(tail)["hash"]
    assert env.verify().ok


def test_rotation_by_time(env: Env) -> None:
    """With rotate_seconds, an idle writer still rotates when the time is up."""
    with env.writing(rotate_seconds=0.2) as w:
        submit(w, 1)
        time.sleep(0.5)
        submit(w, 2)
    assert len(env.files()) >= 2
    assert env.verify().ok


def test_restart_after_rotation_with_empty_live_file(env: Env) -> None:
    """A crash right after a rotation leaves an empty live file: the chain still continues."""
    env.write(20, rotate_bytes=1500)
    env.log.rename(rotated_name(env.log, dt.datetime.now(dt.UTC)))
    env.log.touch()
    env.write(1)
    report = env.verify()
    assert report.ok, report.problems


def test_live_log_is_exclusive(env: Env) -> None:
    """A second process (or writer) cannot write the same live file."""
    with env.writing(), pytest.raises(AuditError, match="in use by another process"):
        env.writer()


def test_start_refuses_log_that_does_not_verify(env: Env, tmp_path: pathlib.Path) -> None:
    """Continuing a chain under the wrong key is refused with a clear error."""
    env.write(1)
    other = Env(tmp_path / "other")
    w = ChainWriter(env.config(), other.key)
    with pytest.raises(AuditError, match="does not verify under the audit key"):
        w.open(rec(0))


# --- durability modes -------------------------------------------------------------


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


@pytest.mark.parametrize(
    ("mode", "synced_while_running"),
    [("always", True), ("interval", False), ("never", False)],
)
def test_fsync_modes(env: Env, fsyncs: list[int], mode: str, synced_while_running: bool) -> None:
    """always: a record is fsynced before submit resolves; interval/never: only written."""
    with env.writing(fsync=mode, fsync_interval=60) as w:
        fsyncs.clear()
        submit(w, 1)
        assert bool(fsyncs) is synced_while_running
        assert (w.durable_seq == w.seq) is synced_while_running
    assert env.verify().ok


def test_interval_mode_syncs_in_background(env: Env, fsyncs: list[int]) -> None:
    """interval: the writer fsyncs by itself within the interval."""
    with env.writing(fsync="interval", fsync_interval=0.05) as w:
        fsyncs.clear()
        submit(w, 1)
        time.sleep(0.3)
        assert fsyncs
        assert w.durable_seq == w.seq


def test_fsync_is_batched(env: Env, fsyncs: list[int]) -> None:
    """Records queued together share one fsync (group commit)."""
    with env.writing() as w:
        fsyncs.clear()
        futures = [w.submit(rec(i)) for i in range(200)]
        for f in futures:
            assert f is not None
            f.result(timeout=10)
        assert len(fsyncs) < 100


# --- fail closed ------------------------------------------------------------------


def fail_for(monkeypatch: pytest.MonkeyPatch, name: str, w: ChainWriter, err: int) -> None:
    real = getattr(os, name)

    def failing(fd: int, *args: object) -> object:
        if fd == w._fd:
            raise OSError(err, os.strerror(err))
        return real(fd, *args)

    monkeypatch.setattr(os, name, failing)


@pytest.mark.parametrize(
    ("call", "err", "reason"),
    [("write", errno.ENOSPC, "write-error"), ("fsync", errno.EIO, "fsync-error")],
)
def test_io_error_blocks_then_new_segment(
    env: Env, monkeypatch: pytest.MonkeyPatch, call: str, err: int, reason: str
) -> None:
    """A failed write/fsync fails the record; once writable, a new segment in a new file."""
    with env.writing(retry_seconds=0.05) as w:
        submit(w, 1)
        fail_for(monkeypatch, call, w, err)
        with pytest.raises(AuditUnavailable, match=reason):
            submit(w, 2)
        with pytest.raises(AuditUnavailable):
            submit(w, 3)  # still broken: never retried on the failed file
        monkeypatch.undo()
        time.sleep(0.1)
        submit(w, 4)
    files = env.files()
    assert len(files) == 2  # the failed file was moved aside, not appended to
    head = records(files[1])[0]
    assert chain(head)["break"]["reason"] == reason
    report = env.verify()
    assert report.ok, report.problems
    assert any("new segment" in n.message for n in report.notes)


def test_removed_log_blocks_and_is_reported(env: Env) -> None:
    """Deleting the live log blocks the next record; verify then reports the missing records."""
    with env.writing(retry_seconds=0.05) as w:
        submit(w, 1)
        env.log.unlink()
        with pytest.raises(AuditUnavailable, match="log-file-removed"):
            submit(w, 2)
        time.sleep(0.1)
        submit(w, 3)
    assert chain(records(env.log)[0])["break"]["reason"] == "log-file-removed"
    report = env.verify()
    assert not report.ok
    assert "records 1-2 missing" in report.problems[0].message


def test_record_with_unknown_type_is_rejected(env: Env) -> None:
    """The strict serializer refuses a non-JSON value instead of writing its repr."""
    with env.writing() as w:
        bad = rec(1)
        bad["socialgate"]["when"] = object()
        fut = w.submit(bad)
        assert fut is not None
        with pytest.raises(AuditUnavailable, match="rejected"):
            fut.result(timeout=10)
        submit(w, 2)  # the chain is unharmed
    assert env.verify().ok


@pytest.mark.parametrize("field", ["password", "Proxy-Authorization", "cookie", "headers", "body"])
def test_secret_fields_cannot_be_written(env: Env, field: str) -> None:
    """Nothing in the pipeline lets a credential, cookie, header set or body into the trail."""
    with env.writing() as w:
        bad = rec(1)
        bad["http"] = {"request": {field: "s3cret"}}
        fut = w.submit(bad)
        assert fut is not None
        with pytest.raises(AuditUnavailable, match="may not appear"):
            fut.result(timeout=10)
    assert "s3cret" not in env.log.read_text()


# --- a real full file system ------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
        capture_output=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root / CAP_SYS_ADMIN)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_file_system(env: Env, small_fs: pathlib.Path) -> None:
    """ENOSPC blocks allowed traffic; after space is freed a new segment starts and verifies."""
    env.log = small_fs / "logs" / "audit.jsonl"
    with env.writing(retry_seconds=0.05, checkpoints_path=None) as w:
        written, error = 0, ""
        for i in range(1000):
            try:
                submit(w, i)
            except AuditUnavailable as e:
                error = str(e)
                break
            written += 1
        assert "write-error" in error
        assert written > 10
        subprocess.run(["mount", "-o", "remount,size=1m", str(small_fs)], check=True)
        time.sleep(0.1)
        submit(w, 9999)
    report = env.verify(checkpoints_path=None)
    assert report.ok, report.problems
    assert report.records >= written


# --- a crash mid-write --------------------------------------------------------------

CRASHER = textwrap.dedent(
    """
    import pathlib, sys
    sys.path.insert(0, sys.argv[2])
    from tests.support.audit_env import Env, rec
    env = Env(pathlib.Path(sys.argv[1]))
    w = env.writer(fsync="never")
    i = 0
    while True:
        i += 1
        w.submit(rec(i), wait=False)
        if i % 500 == 0:
            w.submit(rec(i)).result()
    """
)


def test_kill_9_during_load_then_restart_verifies(env: Env) -> None:
    """SIGKILL while writing, restart, more records: the whole trail verifies."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHER, str(env.root), str(pathlib.Path(__file__).parents[1])]
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if env.log.exists() and env.log.stat().st_size > 200_000:
                break
            time.sleep(0.02)
        else:
            pytest.fail("crasher wrote too little")
    finally:
        proc.kill()
        proc.wait()
    before = env.log.stat().st_size
    env.write(3)
    assert env.log.stat().st_size > before
    report = env.verify()
    assert report.ok, report.problems[:3]
    assert report.records > 200
