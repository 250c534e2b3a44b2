"""Measure loading a policy whose category file lists 1,000,000 domains.

Run by hand: ``.venv/bin/python tests/support/policy_load_perf.py [N] [--json]``. Prints
the load time and the process's peak RSS; the targets are ≤ 3 s and ≤ 300 MB.
The list is generated into a temporary directory (never committed).
``test_policy_load.py::test_million_domain_list`` runs it when SOCIALGATE_PERF=1.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from proxy_addons.policy.load import load_policy


def write_policy(directory: Path, n: int) -> Path:
    """A minimal valid policy naming one generated n-domain category list."""
    (directory / "categories").mkdir()
    with (directory / "categories" / "big.txt").open("w") as f:
        # Every 1000th entry under a [site] header, so both entry kinds are measured.
        for i in range(n):
            if i % 1000 == 0:
                f.write(f"[site{i}.example]\n")
            f.write(f"host{i:07d}-{i * 7919 % 100003}.example{i % 97}.com\n")
    policy = directory / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "organisation: Perf\n"
        "contact: perf@example.org\n"
        "policy_url: https://example.org/policy\n"
        "categories:\n"
        "  big:\n"
        "    domains_files: [categories/big.txt]\n"
        "blocked_categories: [big]\n"
    )
    return policy


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = write_policy(Path(tmp), n)
        size = (Path(tmp) / "categories" / "big.txt").stat().st_size
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        policy = load_policy(path)
        elapsed = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert policy.index.domains.match("www.host0000001-7919.example1.com") is not None
        domains = len(policy.index.domains)
    if "--json" in sys.argv:
        print(json.dumps({"domains": domains, "seconds": elapsed, "peak_rss_mb": peak}))
        return
    print(
        f"{domains} domains ({size / 1e6:.1f} MB list): "
        f"load {elapsed:.2f} s, peak RSS {peak:.0f} MB (before load {before:.0f} MB)"
    )


if __name__ == "__main__":
    main()
