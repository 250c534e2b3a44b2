"""Starting a real proxy under faults: after a crash, under SIGHUP, and when it must refuse."""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import threading
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


# -- 2. SIGHUP during start-up ----------------------------------------------------------


def catches_sighup(pid: int) -> bool:
    """Whether the process has a handler for SIGHUP (SigCgt bit 0), from /proc."""
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGHUP - 1)))


class Storm:
    """SIGHUP every millisecond from the moment the proxy catches SIGHUP or listens,
    whichever comes first (before that, no Python program can catch it)."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.sent = 0
        self.began_after = 0.0  # seconds from the exec
        self.before_listening = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self.proxy.proc is None:
            time.sleep(0.0005)
        proc, t0 = self.proxy.proc, time.monotonic()
        while not catches_sighup(proc.pid) and not self.proxy.port:
            if proc.poll() is not None:
                return
            time.sleep(0.0005)
        self.began_after = time.monotonic() - t0
        self.before_listening = not self.proxy.port
        while not self._stop.is_set() and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGHUP)
            except ProcessLookupError:
                return
            self.sent += 1
            time.sleep(0.001)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("via", ["mitmdump", "run"])
def test_sighup_storm_from_start_up_never_kills(
    tmp_path: pathlib.Path, policy_dir: pathlib.Path, servers: Servers, via: str
) -> None:
    """`systemctl reload` right after a start (and a storm of them) leaves the gate up."""
    proxy = make_proxy(tmp_path, policy_dir, servers, via)
    storm = Storm(proxy)
    try:
        proxy.start()
        time.sleep(1.5)  # the storm goes on past start-up
        storm.stop()
        assert proxy.proc is not None
        assert proxy.proc.poll() is None, "".join(proxy.output)
        proxy.record(blocked_ref(proxy))
    finally:
        storm.stop()
        code = proxy.stop()
    print(f"{via}: SIGHUP caught {storm.began_after * 1000:.0f} ms after exec; {storm.sent} sent")
    assert storm.before_listening, "SIGHUP is caught only once the proxy listens"
    assert storm.sent > 100
    assert code == 0
    assert "SIGHUP, reloading" in "".join(proxy.output)


# -- 5./6. a start that fails: nothing written, one line ------------------------------


def run_to_exit(proxy: Proxy) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        proxy.cmd, cwd=proxy.workdir, env=proxy.env, capture_output=True, text=True, timeout=60
    )


def socialgate_lines(res: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (res.stdout + res.stderr).splitlines() if "socialgate" in line]


def test_failed_start_writes_nothing_and_says_it_in_one_line(
    tmp_path: pathlib.Path, policy_dir: pathlib.Path, servers: Servers
) -> None:
    """An invalid policy under `mitmdump -s`: no audit-started, no log, no key; no traceback."""
    (tmp_path / "policy.yaml").write_text("version: 1\nbogus_key: 1\n")
    proxy = Proxy(tmp_path, tmp_path / "policy.yaml", tmp_path / "audit.jsonl", 1, 2)
    res = run_to_exit(proxy)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "Traceback" not in out
    assert "policy.yaml:2: policy: unknown key 'bogus_key'" in out
    assert not proxy.audit_log.exists()
    assert not (tmp_path / "keys").exists() or not any((tmp_path / "keys").iterdir())


def test_log_in_use_is_one_line(
    tmp_path: pathlib.Path, policy_dir: pathlib.Path, servers: Servers
) -> None:
    """A second proxy on the same log is refused in one line; the first one's log is untouched."""
    first = make_proxy(tmp_path, policy_dir, servers, "mitmdump").start()
    try:
        wait_until(lambda: first.audit_log.exists() and len(records(first.audit_log)) >= 2)
        before = first.audit_log.read_bytes()
        res = run_to_exit(make_proxy(tmp_path, policy_dir, servers, "mitmdump"))
        assert first.audit_log.read_bytes() == before
    finally:
        assert first.stop() == 0
    assert res.returncode != 0
    assert "Traceback" not in res.stdout + res.stderr
    assert len([x for x in socialgate_lines(res) if "in use by another process" in x]) == 1


@pytest.mark.parametrize("via", ["mitmdump", "run"])
def test_log_sealed_with_another_key(
    tmp_path: pathlib.Path, policy_dir: pathlib.Path, servers: Servers, via: str
) -> None:
    """The key is gone (or another one is given): said first, no new key left behind."""
    first = make_proxy(tmp_path, policy_dir, servers, via).start()
    assert first.stop() == 0
    before = first.audit_log.read_bytes()
    (tmp_path / "keys/audit-hmac.key").unlink()
    (tmp_path / "keys/audit-signing.key").rename(tmp_path / "old-signing.key")
    res = run_to_exit(make_proxy(tmp_path, policy_dir, servers, via))
    assert res.returncode != 0
    assert "Traceback" not in res.stdout + res.stderr
    [line] = [x for x in socialgate_lines(res) if "sealed" in x]
    assert "this log was sealed with another key" in line
    assert line.index("sealed with another key") < line.index("altered")
    assert not (tmp_path / "keys/audit-hmac.key").exists()
    assert not (tmp_path / "keys/audit-signing.key").exists()
    assert first.audit_log.read_bytes() == before
