"""The decision function alone: decisions per second on one core.

Run as ``python -m bench.decide_bench POLICY SECONDS``; prints one JSON object.
The calls mirror what the gate passes at each stage (see proxy_addons/addons/gate.py):
CONNECT (one name), ClientHello (CONNECT host + SNI), intercepted request (CONNECT
host, SNI, Host, Host header) and plain HTTP (host, Host header).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Sequence

from bench.workload import BENCH_USER, BLOCKED_HOST, EXEMPT_HOST, PLAIN_HOST, bench_domain
from proxy_addons.decide import Outcome, decide
from proxy_addons.policy.load import load_policy
from proxy_addons.policy.model import Policy

Case = tuple[str | None, tuple[str | None, ...], str | None]

# Traffic mix: mostly not social (as on a real proxy), then exempt and blocked.
CASES: dict[str, list[Case]] = {
    "not-social": [
        (BENCH_USER, (PLAIN_HOST,), None),
        (BENCH_USER, (PLAIN_HOST, PLAIN_HOST), None),
        (BENCH_USER, (PLAIN_HOST, PLAIN_HOST), "GET"),
        (BENCH_USER, ("cdn.assets.bench.example", "cdn.assets.bench.example:443"), "GET"),
        (None, ("static.news.example", "static.news.example"), "GET"),
        (BENCH_USER, ("api.bench.example", "api.bench.example"), None),
        (BENCH_USER, ("Mail.Bench.Example", "mail.bench.example"), "POST"),
    ],
    "exempt": [
        (BENCH_USER, (EXEMPT_HOST,), None),
        (BENCH_USER, (EXEMPT_HOST, EXEMPT_HOST, EXEMPT_HOST, EXEMPT_HOST), "GET"),
    ],
    "blocked": [
        (BENCH_USER, (BLOCKED_HOST, BLOCKED_HOST), None),
        (None, (BLOCKED_HOST, BLOCKED_HOST, BLOCKED_HOST, BLOCKED_HOST), "GET"),
        (BENCH_USER, ("cdn." + bench_domain(123), "cdn." + bench_domain(123)), "GET"),
    ],
}
# 70 % not social, 20 % exempt, 10 % blocked.
WEIGHTS = {"not-social": 70, "exempt": 20, "blocked": 10}
EXPECTED = {"not-social": Outcome.NOT_SOCIAL, "exempt": Outcome.ALLOWED, "blocked": Outcome.BLOCKED}


def mix() -> list[Case]:
    out: list[Case] = []
    for kind, weight in WEIGHTS.items():
        cases = CASES[kind]
        out.extend(cases[i % len(cases)] for i in range(weight))
    return out


def rate(policy: Policy, cases: Sequence[Case], seconds: float, now: dt.datetime) -> float:
    """Decisions per CPU-second of this thread over ``cases``, repeated for about ``seconds``.

    CPU time, not wall time: on a shared machine other processes steal the core,
    and the question is what one decision costs.
    """
    n = 0
    started = time.thread_time()
    deadline = time.perf_counter() + seconds
    while True:
        for user, names, method in cases:
            decide(policy, user, names, method, now)
        n += len(cases)
        if time.perf_counter() >= deadline:
            break
    return n / (time.thread_time() - started)


def main() -> None:
    path, seconds = sys.argv[1], float(sys.argv[2])
    # One core, as the issue asks: the decision runs on mitmproxy's single event loop.
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    policy = load_policy(path)
    now = dt.datetime.now(dt.UTC)
    for kind, cases in CASES.items():
        for user, names, method in cases:
            got = decide(policy, user, names, method, now).outcome
            if got is not EXPECTED[kind]:
                raise SystemExit(f"decide{(user, names, method)} = {got}, expected {kind}")
    rate(policy, mix(), min(seconds, 0.2), now)  # warm up
    result = {"mix": rate(policy, mix(), seconds, now)}
    for kind, cases in CASES.items():
        result[kind] = rate(policy, cases, seconds / 3, now)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
