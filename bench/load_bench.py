"""Policy load time and memory, in a fresh interpreter.

Run as ``python -m bench.load_bench POLICY``; prints one JSON object: the wall
time of ``load_policy`` and the process RSS before and after (the policy is kept
alive, as the proxy keeps it).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    from proxy_addons.policy.load import load_policy

    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    cpu = time.process_time()
    policy = load_policy(sys.argv[1])
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    gc.collect()
    after = rss_mb()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "rss_before_mb": before,
                "rss_after_mb": after,
                "domains": len(policy.index.domains),
            }
        )
    )


if __name__ == "__main__":
    main()
