"""Start a real mitmdump (or `socialgate run`) with socialgate on 127.0.0.1."""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from tests.support.upstream import Servers

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
LISTENING = re.compile(r"proxy listening at .*?:(\d+)")


def launch(
    argv: Sequence[str],
    cwd: pathlib.Path,
    env: dict[str, str],
    timeout: float,
    spawned: Callable[[subprocess.Popen[str]], None] | None = None,
) -> tuple[subprocess.Popen[str], list[str], int]:
    """Start a proxy process and wait until it says where it listens.

    Returns the process, its output (a list that keeps growing while it runs) and the port
    (0 if it did not start listening within ``timeout``). ``spawned`` gets the process at
    once, for tests that act during start-up.
    """
    proc = subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if spawned is not None:
        spawned(proc)
    output: list[str] = []
    port = 0
    ready = threading.Event()

    def pump() -> None:
        nonlocal port
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            m = LISTENING.search(line)
            if m and not port:
                port = int(m.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    ready.wait(timeout)
    return proc, output, port


def terminate(proc: subprocess.Popen[str] | None, grace: float) -> int | None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; the exit status (None: never started)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Proxy:
    def __init__(
        self,
        workdir: pathlib.Path,
        policy: pathlib.Path,
        audit_log: pathlib.Path,
        http_port: int,
        https_port: int,
        *,
        via: str = "mitmdump",
        options: Sequence[str] = (),
    ) -> None:
        self.workdir = workdir
        self.policy = policy
        self.audit_log = audit_log
        self.confdir = workdir / "mitmproxy-conf"
        self.env = dict(
            os.environ, SGTEST_HTTP_PORT=str(http_port), SGTEST_HTTPS_PORT=str(https_port)
        )
        common = [
            "-s",
            str(ROOT / "tests/support/redirect.py"),
            "--set",
            f"confdir={self.confdir}",
            "--set",
            "ssl_insecure=true",
            *options,
        ]
        if via == "run":
            self.cmd = [
                str(BIN / "socialgate"),
                "run",
                "--policy",
                str(policy),
                "--audit-log",
                str(audit_log),
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                "0",
                "--",
                *common,
            ]
        else:
            self.cmd = [
                str(BIN / "mitmdump"),
                "-s",
                str(ROOT / "proxy_addons/socialgate.py"),
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                "0",
                "--set",
                f"socialgate_policy={policy}",
                "--set",
                f"socialgate_audit_log={audit_log}",
                *common,
            ]
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self.port = 0

    @property
    def ca(self) -> pathlib.Path:
        return self.confdir / "mitmproxy-ca-cert.pem"

    def start(self, timeout: float = 20) -> Proxy:
        def spawned(proc: subprocess.Popen[str]) -> None:
            self.proc = proc

        self.proc, self.output, self.port = launch(
            self.cmd, self.workdir, self.env, timeout, spawned
        )
        if not self.port:
            self.stop()
            raise RuntimeError("proxy did not start:\n" + "".join(self.output))
        return self

    def stop(self) -> int | None:
        return terminate(self.proc, 10)

    def url(self, user: str | None = None, password: str = "Corr3ct-Horse-Battery") -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def records(self) -> list[dict[str, Any]]:
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line]

    def access_records(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if "outcome" in r.get("socialgate", {})]

    def record(self, ref: str, timeout: float = 5) -> dict[str, Any]:
        """The audit record with this event.id, once the writer has put it on disk."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for r in self.records():
                if r["event"]["id"] == ref:
                    return r
            time.sleep(0.05)
        raise AssertionError(f"no audit record with event.id {ref}")

    def wait_for_records(self, n: int, timeout: float = 5) -> list[dict[str, Any]]:
        """Access records, once at least ``n`` are on disk."""
        # Blocked attempts are written by the audit thread without holding the response.
        deadline = time.monotonic() + timeout
        while True:
            recs = self.access_records()
            if len(recs) >= n or time.monotonic() > deadline:
                return recs
            time.sleep(0.05)


def start_proxy(
    workdir: pathlib.Path,
    policy_dir: pathlib.Path,
    servers: Servers,
    *,
    via: str = "mitmdump",
    options: tuple[str, ...] = (),
) -> Proxy:
    """A started proxy on ``policy_dir``'s policy.yaml and htpasswd, in front of ``servers``."""
    return Proxy(
        workdir,
        policy_dir / "policy.yaml",
        workdir / "audit.jsonl",
        servers.http.port,
        servers.https.port,
        via=via,
        options=("--set", f"proxyauth=@{policy_dir / 'htpasswd'}", *options),
    ).start()


def authenticating_proxy(
    workdir: pathlib.Path, policy_dir: pathlib.Path, http_port: int, https_port: int, *extra: str
) -> Proxy:
    """A started mitmdump with socialgate and proxy auth (the test htpasswd) in front of the
    upstreams at those ports; ``extra``: more mitmdump arguments (``--set …``)."""
    return Proxy(
        workdir,
        policy_dir / "policy.yaml",
        workdir / "audit.jsonl",
        http_port,
        https_port,
        options=("--set", f"proxyauth=@{policy_dir / 'htpasswd'}", *extra),
    ).start()
