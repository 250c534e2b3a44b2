"""The load generator: Debian's `hey` (Go), driven through the proxy under test.

`hey` speaks HTTP/1.1 keep-alive, absolute-form requests to an HTTP proxy and
CONNECT tunnels for https URLs (certificate checks off, so it works through
mitmproxy's interception), and Proxy-Authorization from the proxy URL. It runs
pinned to one Go thread; each run reports its own CPU time and the proxy's, so a
table row shows whether the proxy (and not the client) was the bottleneck.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.procs import cpu_seconds


class BenchSetupError(RuntimeError):
    """A tool the benchmark needs is missing and cannot be installed."""


def ensure_hey() -> str:
    """Path of `hey`, installing the Debian package (as root) if it is missing."""
    found = shutil.which("hey")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchSetupError("hey is not installed and we are not root: apt-get install hey")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "hey"]
    # Try the package lists we have first; refresh them only if that fails.
    for steps in ([install], [["apt-get", "update", "-qq"], install]):
        for cmd in steps:
            subprocess.run(cmd, env=env, check=False, capture_output=True)
        found = shutil.which("hey")
        if found:
            return found
    raise BenchSetupError("could not install hey with apt-get")


@dataclass(frozen=True)
class LoadResult:
    rps: float  # responses per second over the run, all statuses
    statuses: Counter[int]
    errors: int  # requests that got no HTTP response
    seconds: float
    proxy_cpu: float  # proxy CPU time / wall time (1.0 = one core busy)
    client_cpu: float  # hey CPU time / wall time

    @property
    def responses(self) -> int:
        return sum(self.statuses.values())


_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_STATUS = re.compile(r"^\s+\[(\d{3})\]\s+(\d+) responses", re.M)
_ERRORS = re.compile(r"^\s+\[(\d+)\]\s+Get .*$", re.M)


def parse_hey(text: str) -> tuple[float, Counter[int], int]:
    m = _RPS.search(text)
    if m is None:
        raise ValueError(f"hey printed no Requests/sec:\n{text[-2000:]}")
    statuses: Counter[int] = Counter()
    for code, count in _STATUS.findall(text):
        statuses[int(code)] += int(count)
    errors = 0
    if "Error distribution:" in text:
        tail = text.split("Error distribution:", 1)[1]
        errors = sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]", tail, re.M))
    return float(m.group(1)), statuses, errors


def run_hey(
    hey: str,
    proxy_port: int,
    url: str,
    *,
    seconds: float,
    concurrency: int,
    keepalive: bool = True,
    credentials: str | None = None,
    proxy_pid: int | Sequence[int],
    log: Path | None = None,
) -> LoadResult:
    """Drive ``url`` through the proxy for ``seconds``; return its rates and CPU shares.

    ``proxy_pid``: the proxy's process, or all of them (a balancer and its workers).
    """
    pids = [proxy_pid] if isinstance(proxy_pid, int) else list(proxy_pid)
    auth = f"{credentials}@" if credentials else ""
    cmd = [
        hey,
        "-z",
        f"{seconds}s",
        "-c",
        str(concurrency),
        "-cpus",
        "1",
        "-t",
        "30",
        "-x",
        f"http://{auth}127.0.0.1:{proxy_port}",
    ]
    if not keepalive:
        cmd.append("-disable-keepalive")
    cmd.append(url)
    proxy_before = sum(cpu_seconds(p) for p in pids)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    proxy_after = sum(cpu_seconds(p) for p in pids)
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ {' '.join(cmd)}\n{out}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"hey exited {proc.returncode}: {out[-1000:]}")
    rps, statuses, errors = parse_hey(out)
    return LoadResult(
        rps=rps,
        statuses=statuses,
        errors=errors,
        seconds=wall,
        proxy_cpu=(proxy_after - proxy_before) / wall,
        client_cpu=(usage.ru_utime + usage.ru_stime) / wall,
    )
