"""HAProxy from deploy/haproxy.cfg in front of test workers, on loopback ports.

The test configuration is the deployed one with only what a test cannot use swapped out:
no syslog, no privilege drop or daemon mode, a stats socket in the test's directory, the
listening address, the worker lines, and (to keep tests short) a faster health check.
Everything that decides behaviour (mode http, forwardfor, http-reuse never, the check
request and its expected answer, timeouts, retries) is kept as deployed.
"""

from __future__ import annotations

import pathlib
import socket
import subprocess
import time
from collections.abc import Sequence

from tests.support.units import DEPLOY

HAPROXY = "/usr/sbin/haproxy"
DEPLOYED = DEPLOY / "haproxy.cfg"
# Lines of the deployed file a test replaces (by their first words).
_DROPPED = ("log /dev/log", "user ", "group ", "daemon", "stats socket", "server ", "maxconn")


def config(
    listen_port: int,
    workers: Sequence[int],
    stats_socket: pathlib.Path,
    *,
    check_interval: str = "300ms",
    source: str | None = None,
) -> str:
    """The deployed configuration for ``workers`` (ports on 127.0.0.1), listening on
    127.0.0.1:``listen_port``; ``source``: the address HAProxy connects to workers from."""
    out: list[str] = []
    for line in DEPLOYED.read_text().splitlines():
        words = line.strip()
        if words.startswith(_DROPPED):
            continue
        if words.startswith("bind "):
            line = f"    bind 127.0.0.1:{listen_port}"
        elif words.startswith("balance ") and source is not None:
            out += [line, f"    source {source}"]
            continue
        elif words.startswith("default-server "):
            line = line.replace("inter 2s", f"inter {check_interval}")
        elif words == "global":
            out += [line, "    maxconn 2000", f"    stats socket {stats_socket} level admin"]
            continue
        out.append(line)
    out += [f"    server w{n:02d} 127.0.0.1:{port}" for n, port in enumerate(workers, 1)]
    return "\n".join(out) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Balancer:
    """A running HAProxy (foreground, -db) with the deployed configuration."""

    def __init__(self, workdir: pathlib.Path, workers: Sequence[int]) -> None:
        self.port = free_port()
        self.stats = workdir / "haproxy.sock"
        self.cfg = workdir / "haproxy.cfg"
        self.cfg.write_text(config(self.port, workers, self.stats))
        self.log = (workdir / "haproxy.log").open("w")
        self.proc = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(self.cfg)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    "haproxy did not start: " + (workdir / "haproxy.log").read_text()
                )
            time.sleep(0.05)

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return self.stats.exists()

    def command(self, line: str) -> str:
        """One command on the admin socket (e.g. "show stat"); its answer."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.stats))
            s.sendall(line.encode() + b"\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.decode()

    def states(self) -> dict[str, str]:
        """Each worker's health as HAProxy sees it: {"w01": "UP", "w02": "DOWN", …}."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        name, status = header.index("svname"), header.index("status")
        rows = [r.split(",") for r in lines[1:] if r.startswith("workers,")]
        return {
            r[name]: r[status].split()[0] for r in rows if r[name] not in ("BACKEND", "FRONTEND")
        }

    def wait_for(self, wanted: dict[str, str], timeout: float = 15) -> None:
        """Until the named workers are in the wanted states ("UP", "DOWN")."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            if all(states.get(k) == v for k, v in wanted.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"haproxy sees {states}, wanted {wanted}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
