"""Starting a real proxy under faults: after a crash, under SIGHUP, and when it must refuse."""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.proxy import BIN, Proxy
from tests.support.upstream import Servers

pytestmark = pytest.mark.integration

HTML = {"Accept": "text/html"}


def make_proxy(work: pathlib.Path, policy_dir: pathlib.Path, servers: Servers, via: str) -> Proxy:
    return Proxy(
        work,
        policy_dir / "policy.yaml",
        work / "audit.jsonl",
        servers.http.port,
        servers.https.port,
        via=via,
        options=("--set", f"proxyauth=@{policy_dir / 'htpasswd'}"),
    )


def wait_until(check: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def records(log: pathlib.Path) -> list[dict[str, Any]]:
    """The complete records of a log (a torn line, kept as evidence, is skipped)."""
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def blocked_ref(proxy: Proxy) -> str:
    with httpx.Client(proxy=proxy.url("carol"), timeout=10) as c:
        r = c.get("http://www.facebook.com/", headers=HTML)
    assert r.status_code == 403
    return r.headers["x-socialgate-ref"]


def verify(work: pathlib.Path, *logs: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "socialgate"),
            "audit",
            "verify",
            "--key",
            str(work / "keys/audit-hmac.key"),
            *(str(p) for p in logs),
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- 1. the first restart after a crash -------------------------------------------------


@pytest.mark.parametrize("via", ["mitmdump", "run"])
def test_restart_after_crash_with_torn_tail(
    tmp_path: pathlib.Path, policy_dir: pathlib.Path, servers: Servers, via: str
) -> None:
    """kill -9, a half-written last line: the next start recovers and serves (exit 0 later)."""
    first = make_proxy(tmp_path, policy_dir, servers, via).start()
    ref = blocked_ref(first)
    first.record(ref)
    first.wait_for_records(1)
    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    # What a writer killed inside write(2) leaves behind: a line without its end.
    with first.audit_log.open("ab") as fh:
        fh.write(b'{"@timestamp":"2026-11-25T10:00:00.1234')
    second = make_proxy(tmp_path, policy_dir, servers, via).start()
    try:
        ref = blocked_ref(second)
        wait_until(lambda: any(r["event"]["id"] == ref for r in records(second.audit_log)))
    finally:
        assert second.stop() == 0
    output = "".join(second.output)
    assert "incomplete record" in output
    assert "Errors logged during startup" not in output
    started = [r for r in records(second.audit_log) if r["event"]["action"] == "audit-started"]
    assert started[-1]["socialgate"]["chain"]["break"]["reason"] == "torn-tail"
    assert started[-1]["socialgate"]["previous_shutdown"] == "unclean"
    res = verify(tmp_path, second.audit_log)
    assert res.returncode == 0, res.stdout + res.stderr
