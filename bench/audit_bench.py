"""Audit trail benchmark: chained records/second and added latency per allowed request.

    .venv/bin/python bench/audit_bench.py [--records N] [--dir DIR]

For each fsync mode (and fsync=always with forward-secure sealing, ``always+seal``: records
sealed under the current epoch's key, with 1 s epochs so keys step during the run):
throughput with many requests waiting at once (what group commit is for), and the latency
one allowed request waits for its record when alone (the worst case for fsync=always).
DIR should be on the file system the proxy will log to: fsync cost is a property of the disk.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import pathlib
import statistics
import tempfile
import time

from proxy_addons.audit import epochs
from proxy_addons.audit.keys import load_or_create_secret, load_or_create_signing_key
from proxy_addons.audit.record import Access, Record, access_record
from proxy_addons.audit.sink import Renderer
from proxy_addons.audit.writer import FSYNC_MODES, ChainWriter, WriterConfig
from proxy_addons.decide import Decision, Outcome, Reason

DECISION = Decision(
    Outcome.ALLOWED, Reason.EXEMPTION, host="www.linkedin.com", category="social_networking",
    entry="linkedin.com", site="linkedin.com", exemption_id="EX-2026-001",
    names=("www.linkedin.com",),
)  # fmt: skip
ACCESS = Access(
    user="alice", identity="proxyauth", groups=("press-office",), source_ip="10.1.2.3",
    source_port=50412, stage="request", scheme="https", domain="www.linkedin.com", port=443,
    method="GET", path="/feed/update/urn:li:activity:1234567890",
)  # fmt: skip


def record() -> Record:
    return access_record(
        DECISION, ACCESS, ref="SG-AAAAA-BBBBB", policy_sha256="ab" * 32, now=dt.datetime.now(dt.UTC)
    )


async def throughput(writer: ChainWriter, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            fut = writer.submit(record())
            assert fut is not None
            await asyncio.wrap_future(fut)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - start)


async def latency(writer: ChainWriter, n: int) -> list[float]:
    out = []
    for _ in range(n):
        rec = record()
        start = time.perf_counter()
        fut = writer.submit(rec)
        assert fut is not None
        await asyncio.wrap_future(fut)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--latency-samples", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--dir", type=pathlib.Path, default=None)
    args = parser.parse_args()
    base = args.dir or pathlib.Path(tempfile.mkdtemp(prefix="audit-bench-"))
    key = load_or_create_secret(base / "keys" / "audit-hmac.key")
    signing = load_or_create_signing_key(base / "keys" / "audit-signing.key")

    renderer = Renderer(key)
    start = time.perf_counter()
    prev = "0" * 64
    for i in range(args.records):
        line, prev = renderer.render(record(), "bench", i + 1, prev)
    per_sec = args.records / (time.perf_counter() - start)
    print(f"log dir: {base}")
    print(
        f"build + seal + render only (no I/O): {per_sec:,.0f} records/s; {len(line)} bytes/record"
    )
    print(f"{'fsync':<12} {'records/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    seal_dir = base / "seal"
    epochs.enrol(seal_dir, epochs.new_seed(), "bench-seal", "2026-01-01T00:00:00Z")
    for mode in [*FSYNC_MODES, "always+seal"]:
        sealed = mode.endswith("+seal")
        config = WriterConfig(
            path=base / "logs" / f"audit-{mode}.jsonl", worker="bench-seal" if sealed else "",
            fsync=mode.removesuffix("+seal"),
            checkpoints_path=base / "logs" / f"audit-{mode}.checkpoints",
            seal_dir=seal_dir if sealed else None, epoch_seconds=1.0,
        )  # fmt: skip
        writer = ChainWriter(config, key, signing)
        writer.open(record())

        async def run(w: ChainWriter = writer) -> tuple[float, list[float]]:
            rate = await throughput(w, args.records, args.concurrency)
            return rate, await latency(w, args.latency_samples)

        rate, lat = asyncio.run(run())
        writer.close(record())
        ms = sorted(x * 1000 for x in lat)
        p99 = ms[int(len(ms) * 0.99) - 1]
        print(f"{mode:<12} {rate:>11,.0f} {statistics.median(ms):>8.3f} {p99:>8.3f} {ms[-1]:>8.3f}")


if __name__ == "__main__":
    main()
