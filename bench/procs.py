"""Child processes of the benchmark: origins and proxies, with /proc accounting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, all threads."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may contain spaces: fields start after the last ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class Origin:
    proc: subprocess.Popen[bytes]
    http_port: int
    https_port: int


def start_origin(cert: Path, key: Path, log: Path) -> Origin:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.upstream", "--cert", str(cert), "--key", str(key)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("http="):
        stop(proc)
        raise RuntimeError(f"origin did not start; see {log}")
    parts = dict(p.split("=") for p in line.split())
    return Origin(proc, int(parts["http"]), int(parts["https"]))


@dataclass
class Proxy:
    """A running mitmdump (bare or with socialgate) listening on 127.0.0.1:port."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    ready_seconds: float  # from exec to listening (includes policy load)
    log: Path
    extra: dict[str, str] = field(default_factory=dict)
    also: list[int] = field(default_factory=list)  # processes behind it (a balancer's workers)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        """Every process whose CPU is this proxy's."""
        return [self.proc.pid, *self.also]


def start_mitmdump(
    name: str,
    args: list[str],
    *,
    origin: Origin,
    workdir: Path,
    upstream_ca: Path,
    timeout: float = 180.0,
) -> Proxy:
    """Start mitmdump with the bench resolver plus ``args``; wait until it listens.

    Both sides of every comparison get the same base options: quiet flow output,
    lazy server connections, upstream verified against the bench CA, and a
    confdir of their own (so each run generates its own mitmproxy CA).
    """
    confdir = workdir / f"conf-{name}"
    confdir.mkdir(parents=True, exist_ok=True)
    port_file = workdir / f"port-{name}"
    port_file.unlink(missing_ok=True)
    log = workdir / f"{name}.log"
    cmd = [
        str(VENV_BIN / "mitmdump"),
        "-s",
        str(REPO / "bench" / "resolver_addon.py"),
        *args,
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        "0",
        "--set",
        f"confdir={confdir}",
        "--set",
        f"bench_http_port={origin.http_port}",
        "--set",
        f"bench_https_port={origin.https_port}",
        "--set",
        f"bench_port_file={port_file}",
        "--set",
        f"ssl_verify_upstream_trusted_ca={upstream_ca}",
        "--set",
        "connection_strategy=lazy",
        "--set",
        "flow_detail=0",
        "--set",
        "termlog_verbosity=warn",
    ]
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    while not port_file.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{name}: mitmdump exited {proc.returncode}; see {log}")
        if time.monotonic() - started > timeout:
            stop(proc)
            raise RuntimeError(f"{name}: not listening after {timeout:.0f} s; see {log}")
        time.sleep(0.05)
    ready = time.monotonic() - started
    return Proxy(name, proc, int(port_file.read_text()), ready, log)
