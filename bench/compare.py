"""Side-by-side comparisons: the same load against two or more proxies, A B A B.

Every side of a comparison runs in each round, in turn, so slow drifts of a
shared machine (other jobs, thermal limits) hit both sides alike; the verdict
uses medians over rounds.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

from bench.loadgen import LoadResult
from bench.procs import Proxy


@dataclass(frozen=True)
class Side:
    label: str
    proxy: str  # key of the proxy to drive
    url: str
    keepalive: bool = True
    credentials: str | None = None  # user:password for Proxy-Authorization
    expect: int = 200  # every response must have this status for the run to count


class SideOptions(TypedDict, total=False):
    """The optional fields of a `Side`, for helpers that pass them on."""

    keepalive: bool
    credentials: str | None
    expect: int


@dataclass(frozen=True)
class SideTarget:
    """The row of one side after the first in a comparison of three or more."""

    suffix: str  # row key: <comparison key>-<suffix>
    min_ratio: float | None
    target: str


@dataclass(frozen=True)
class Comparison:
    key: str
    title: str
    sides: tuple[Side, ...]  # sides[0] is the baseline the others are divided by
    min_ratio: float | None  # None: informational
    target: str
    max_ratio: float | None = None
    rounds: int | None = None  # overrides the run's rounds (e.g. for very slow baselines)
    concurrency: int | None = None
    per_side: tuple[SideTarget, ...] = ()  # sides[1:]'s own rows (default: -mid, -max)


@dataclass
class SideResult:
    side: Side
    runs: list[LoadResult] = field(default_factory=list)
    problem: str | None = None

    @property
    def median_rps(self) -> float:
        return statistics.median(r.rps for r in self.runs)

    @property
    def per_cpu_second(self) -> float:
        """Requests per second of proxy CPU: what a request costs, whatever else runs."""
        return statistics.median(r.rps / r.proxy_cpu for r in self.runs if r.proxy_cpu > 0)

    @property
    def proxy_cpu(self) -> float:
        return statistics.median(r.proxy_cpu for r in self.runs)

    @property
    def client_cpu(self) -> float:
        return statistics.median(r.client_cpu for r in self.runs)


def check_run(side: Side, result: LoadResult) -> str | None:
    """Why a run does not measure what it claims (wrong statuses, errors), or None."""
    total = result.responses + result.errors
    if result.responses == 0:
        return f"no responses ({result.errors} errors)"
    wrong = {c: n for c, n in result.statuses.items() if c != side.expect}
    # A few requests cut off when hey stops at the deadline are not a fault.
    if sum(wrong.values()) + result.errors > max(2, total // 1000):
        return f"expected {side.expect}, got {dict(result.statuses)} and {result.errors} errors"
    return None


def run_comparison(
    comp: Comparison,
    proxies: dict[str, Proxy],
    drive: Callable[[Side, Proxy, float], LoadResult],
    *,
    rounds: int,
    seconds: float,
    warmup: float,
) -> list[SideResult]:
    results = [SideResult(side) for side in comp.sides]
    for res in results:
        if res.side.proxy not in proxies:
            res.problem = f"proxy {res.side.proxy} not running"
    live = [r for r in results if r.problem is None]
    for res in live:
        try:
            drive(res.side, proxies[res.side.proxy], warmup)
        except RuntimeError as e:
            res.problem = str(e)
    for _ in range(comp.rounds or rounds):
        for res in live:
            if res.problem is not None:
                continue
            try:
                run = drive(res.side, proxies[res.side.proxy], seconds)
            except RuntimeError as e:
                res.problem = str(e)
                continue
            res.problem = check_run(res.side, run)
            res.runs.append(run)
    return results
