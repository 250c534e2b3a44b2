"""Scale-out rows: one socialgate worker direct, HAProxy + that worker, HAProxy + two workers.

HAProxy runs deploy/haproxy.cfg (ports swapped for loopback ones, as the scale-out test does,
by `tests.support.haproxy.config`) and connects to the workers from 127.0.0.9, the only
address the workers trust for X-Forwarded-For: the load generator's direct requests (from
127.0.0.1) are judged on their own address, the balanced ones on the forwarded address, which
is the same 127.0.0.1, so every side has the same identity and the same decisions. All three
sides run in each round, in turn. The CPU of a balanced side is HAProxy's plus its workers'.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from bench.compare import Comparison, Side, SideTarget
from bench.procs import Proxy, stop
from tests.support.haproxy import HAPROXY, config, free_port

BALANCER_SOURCE = "127.0.0.9"
WORKERS = ("sgw-1", "sgw-2")
BALANCERS = {"lb-1": WORKERS[:1], "lb-2": WORKERS}


def comparisons(plain: str, plain_tls: str, exempt_tls: str) -> list[Comparison]:
    """One comparison per workload, three sides: direct, balancer + 1, balancer + 2."""

    def comp(key: str, title: str, url: str, keepalive: bool) -> Comparison:
        return Comparison(
            f"scaleout-{key}",
            title,
            (
                Side("one worker direct", "sgw-1", url, keepalive=keepalive),
                Side("HAProxy + 1 worker", "lb-1", url, keepalive=keepalive),
                Side("HAProxy + 2 workers", "lb-2", url, keepalive=keepalive),
            ),
            None,
            "",
            per_side=(
                SideTarget("balancer", 0.95, "≥ 95 % of direct (overhead ≤ 5 %)"),
                SideTarget("two-workers", 1.6, "≥ 1.6× one worker"),
            ),
        )

    return [
        comp("plain-http", "non-social plain HTTP, keep-alive", plain, True),
        comp(
            "https-passthrough-new-conn",
            "non-social HTTPS passed through, one CONNECT + TLS handshake per request",
            plain_tls,
            False,
        ),
        comp("https-intercept-exempt", "social, exempt user, HTTPS intercepted", exempt_tls, True),
    ]


def worker_args(key: str, work: Path, policy: Path) -> list[str]:
    """mitmdump arguments of worker ``key``: socialgate, its own audit log, the balancer trusted."""
    return [
        "-s",
        str(Path(__file__).resolve().parent.parent / "proxy_addons" / "socialgate.py"),
        f"--set=socialgate_policy={policy}",
        f"--set=socialgate_audit_log={work / f'audit-{key}.jsonl'}",
        f"--set=socialgate_audit_worker={key}",
        f"--set=socialgate_trusted_proxies={BALANCER_SOURCE}",
    ]


def start_balancer(name: str, workers: list[Proxy], work: Path, timeout: float = 10) -> Proxy:
    """HAProxy in front of ``workers``; a `Proxy` whose CPU includes the workers'."""
    port = free_port()
    cfg = work / f"haproxy-{name}.cfg"
    cfg.write_text(
        config(
            port, [w.port for w in workers], work / f"haproxy-{name}.sock", source=BALANCER_SOURCE
        )
    )
    log = work / f"{name}.log"
    started = time.monotonic()
    proc = subprocess.Popen(
        [HAPROXY, "-db", "-f", str(cfg)], stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() - started > timeout:
                stop(proc)
                raise RuntimeError(f"{name}: haproxy did not start; see {log}") from None
            time.sleep(0.05)
    # Wait for the first health checks, so no worker is still "starting" when measured.
    time.sleep(0.5)
    ready = time.monotonic() - started
    return Proxy(name, proc, port, ready, log, also=[w.pid for w in workers])
