"""Health for systemd and monitoring, through a real proxy and a fake $NOTIFY_SOCKET."""

from __future__ import annotations

import json
import pathlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.policies import write_htpasswd, write_policy
from tests.support.proxy import Proxy
from tests.support.upstream import Servers

pytestmark = pytest.mark.integration


class NotifySocket:
    """A unix datagram socket standing in for systemd's: collects every message."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.messages: list[dict[str, str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append(fields)

    def wait(self, check: Callable[[dict[str, str]], bool], after: int = 0) -> int:
        """Index of the first message past ``after`` that passes ``check``."""
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            for i, m in enumerate(self.messages[after:], after):
                if check(m):
                    return i
            time.sleep(0.02)
        raise AssertionError(f"no such notification in {self.messages}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


@pytest.fixture
def notify(tmp_path: pathlib.Path) -> Iterator[NotifySocket]:
    n = NotifySocket(tmp_path / "notify.sock")
    yield n
    n.close()


def status_file(path: pathlib.Path, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        try:
            snap: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            snap = {}
        if snap and check(snap):
            return snap
        time.sleep(0.05)
    raise AssertionError(f"status file never passed the check: {path.read_text()}")


def policy_sha(proxy: Proxy) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for r in proxy.records():
            if r["event"]["action"] == "policy-loaded":
                return str(r["socialgate"]["policy_sha256"])
        time.sleep(0.02)
    raise AssertionError("no policy-loaded record")


@pytest.mark.parametrize("via", ["run", "mitmdump"])
def test_notify_ready_reloading_status_stopping(
    tmp_path: pathlib.Path, servers: Servers, notify: NotifySocket, via: str
) -> None:
    pol = tmp_path / "pol"
    pol.mkdir()
    policy = write_policy(pol)
    status = tmp_path / "status.json"
    proxy = Proxy(
        tmp_path,
        policy,
        tmp_path / "audit.jsonl",
        servers.http.port,
        servers.https.port,
        via=via,
        options=(
            "--set",
            f"proxyauth=@{write_htpasswd(pol)}",
            "--set",
            f"socialgate_status_file={status}",
            "--set",
            "socialgate_reload_interval=0.2",
        ),
    )
    proxy.env["NOTIFY_SOCKET"] = str(notify.path)
    proxy.start()
    try:
        ready = notify.wait(lambda m: m.get("READY") == "1")
        sha = policy_sha(proxy)
        line = notify.messages[ready]["STATUS"]
        assert f"policy {sha[:12]}" in line
        assert "audit writing at seq" in line
        assert "0 records lost since start" in line
        snap = status_file(status, lambda s: s["state"] == "ready")
        assert snap["policy"]["sha256"] == sha
        assert snap["audit"]["state"] == "writing"
        assert snap["records_lost_since_start"] == {"total": 0, "by_action": {}}

        assert proxy.proc is not None
        proxy.proc.send_signal(signal.SIGHUP)
        reloading = notify.wait(lambda m: m.get("RELOADING") == "1", ready + 1)
        assert int(notify.messages[reloading]["MONOTONIC_USEC"]) > 0
        notify.wait(lambda m: m.get("READY") == "1", reloading + 1)

        policy.write_text("version: 1\nbogus: 1\n")
        failed = notify.wait(lambda m: "last reload failed" in m.get("STATUS", ""))
        assert "policy.yaml:" in notify.messages[failed]["STATUS"]
        snap = status_file(status, lambda s: (s["last_reload"] or {}).get("result") == "failed")
        assert snap["policy"]["sha256"] == sha  # the last good one stays
    finally:
        code = proxy.stop()
    assert code == 0
    notify.wait(lambda m: m.get("STOPPING") == "1")


def test_failed_start_never_says_ready(tmp_path: pathlib.Path, notify: NotifySocket) -> None:
    (tmp_path / "policy.yaml").write_text("version: 1\nbogus_key: 1\n")
    proxy = Proxy(tmp_path, tmp_path / "policy.yaml", tmp_path / "audit.jsonl", 1, 2)
    proxy.env["NOTIFY_SOCKET"] = str(notify.path)
    res = subprocess.run(
        proxy.cmd, cwd=tmp_path, env=proxy.env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode != 0
    time.sleep(0.2)
    assert not any(m.get("READY") == "1" for m in notify.messages)
