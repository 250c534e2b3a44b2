"""Policy reads with a deadline: a read that hangs (a hung mount) fails loudly, never for ever."""

from __future__ import annotations

import asyncio
import os
import pathlib
import threading
import time

import pytest

from proxy_addons.addons import policy_watcher as reload
from proxy_addons.deadline import Deadline, Hung
from proxy_addons.fileio import open_regular
from tests.test_reload_watcher import Rig


def test_deadline_gives_up_and_counts_the_hung_thread() -> None:
    release = threading.Event()
    deadline = Deadline("test read", max_hung=1)

    async def main() -> None:
        assert await deadline.run(1, lambda: 42) == 42
        with pytest.raises(Hung, match=r"within 0\.1 s"):
            await deadline.run(0.1, release.wait)
        assert deadline.hung == 1
        with pytest.raises(Hung, match="still have not returned"):
            await deadline.run(1, lambda: 1)
        release.set()
        for _ in range(100):
            if not deadline.hung:
                break
            await asyncio.sleep(0.01)
        assert deadline.hung == 0
        with pytest.raises(ZeroDivisionError):
            await deadline.run(1, lambda: 1 // 0)

    asyncio.run(main())


def test_fifo_is_refused_not_waited_on(tmp_path: pathlib.Path) -> None:
    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match=r"not a regular file \(a named pipe\)"):
        open_regular(fifo)


def test_hung_read_is_a_loud_failed_reload(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reload gives up at the deadline: record, status; polling waits for the hung read."""
    rig = Rig(tmp_path)
    release = threading.Event()
    real = reload._load

    def hanging(path: str, old: object) -> object:
        release.wait()
        return real(path, old)  # type: ignore[arg-type]

    monkeypatch.setattr(reload, "_load", hanging)
    rig.watcher.timeout = 0.2

    async def main() -> None:
        start = time.monotonic()
        outcome = await rig.watcher.reload("sighup")
        assert time.monotonic() - start < 2
        assert outcome.result == "failed"
        assert await rig.watcher.check() is None  # no pile of threads behind a dead mount
        release.set()

    asyncio.run(main())
    rec = rig.audit.records[-1]
    assert rec["event"]["action"] == "policy-reload-failed"
    assert "did not return within 0.2 s" in rec["message"]
    assert rec["socialgate"]["policy_sha256"] == rig.first.sha256
    assert rig.store.current is rig.first
    assert rig.watcher.status is not None
    assert rig.watcher.status.result == "failed"
