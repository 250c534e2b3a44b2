"""Micro benchmark: what the shared reminder state costs an exempt page load.

    .venv/bin/python bench/shared_state_bench.py

``due`` runs on every exempt page load (one indexed SELECT, WAL: never waits for a
writer); ``issue`` and ``acknowledge`` only when a reminder is shown or acknowledged.
Compared with the in-memory state, on a store holding 10,000 users.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import tempfile
import time
from collections.abc import Callable

from proxy_addons.reminder import Reminders, ReminderState
from proxy_addons.shared_state import SharedReminders

USERS = 10_000
NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(hours=24)


def per_call(n: int, call: Callable[[int], object]) -> float:
    """Microseconds per call, best of three rounds of ``n``."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(n):
            call(i)
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def measure(name: str, state: ReminderState) -> None:
    for i in range(USERS):
        state.acknowledge(f"user{i}", state.issue(f"user{i}", "SG-REF", NOW), NOW)
    due = per_call(20_000, lambda i: state.due(f"user{i % USERS}", DAY, NOW))
    issue = per_call(2_000, lambda i: state.issue(f"user{i % USERS}", "SG-REF", NOW))
    pending = iter([(f"other{i}", state.issue(f"other{i}", "SG-REF", NOW)) for i in range(6_000)])
    ack = per_call(2_000, lambda _: state.acknowledge(*next(pending), NOW))
    print(f"{name:8} due {due:6.1f} us   issue {issue:6.1f} us   acknowledge {ack:6.1f} us")


def main() -> None:
    measure("memory", Reminders())
    with tempfile.TemporaryDirectory() as d:
        shared = SharedReminders(pathlib.Path(d) / "state.db")
        measure("sqlite", shared)
        shared.close()


if __name__ == "__main__":
    main()
