"""Policy drift: workers that enforced different policies at the same time.

Every worker (its own chain, ``socialgate.chain.worker``, on any host) records
``policy-loaded`` with the ``policy_sha256`` it put in force, at start and at each
reload. From those records each worker's time line is built: a policy is in force
from its ``policy-loaded`` until the next one, until ``audit-stopped`` or
``audit-started`` (the worker stopped or restarted), or else until the last record
read (a worker that has not said it stopped is taken to be running). Two workers
whose in-force policies differ over a window longer than ``grace`` drifted: a reload
fanned out to every worker normally lands within seconds, so shorter windows are the
ordinary reload skew and are not reported (``grace=0`` reports them too).

Only lifecycle and checkpoint records are parsed (`PREFILTER`): checkpoints show a
worker alive between reloads.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from proxy_addons.investigate.read import Entry, Prefilter
from proxy_addons.investigate.timeparse import key_to_datetime

POLICY_LOADED = "policy-loaded"
ENDS = ("audit-stopped", "audit-started")
DEFAULT_GRACE = dt.timedelta(seconds=60)
PREFILTER = Prefilter(
    (
        (
            b'"policy-loaded"',
            b'"audit-stopped"',
            b'"audit-started"',
            b'"checkpoint"',
        ),
    )
)


@dataclass(frozen=True, slots=True)
class Segment:
    """One worker enforcing one policy from ``since`` until ``until``."""

    worker: str
    sha256: str
    since: str  # canonical timestamps
    until: str


@dataclass(frozen=True, slots=True)
class Drift:
    """Two workers enforcing different policies over [since, until)."""

    worker_a: str
    sha256_a: str
    worker_b: str
    sha256_b: str
    since: str
    until: str

    @property
    def seconds(self) -> float:
        return (key_to_datetime(self.until) - key_to_datetime(self.since)).total_seconds()

    def text(self) -> str:
        return (
            f"policy drift: worker {self.worker_a} ran policy {self.sha256_a} while worker "
            f"{self.worker_b} ran {self.sha256_b}, from {self.since} to {self.until} "
            f"({self.seconds:.0f} s)"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "workers": [self.worker_a, self.worker_b],
            "policy_sha256": [self.sha256_a, self.sha256_b],
            "since": self.since,
            "until": self.until,
            "seconds": self.seconds,
        }


def _worker(record: dict[str, object]) -> str | None:
    sg = record.get("socialgate")
    chain = sg.get("chain") if isinstance(sg, dict) else None
    worker = chain.get("worker") if isinstance(chain, dict) else None
    return worker if isinstance(worker, str) and worker else None


def segments(entries: Iterable[Entry]) -> list[Segment]:
    """Every worker's policies in force, from time-ordered entries."""
    open_: dict[str, tuple[str, str]] = {}  # worker -> (sha256, since)
    done: list[Segment] = []
    last = ""
    for entry in entries:
        last = max(last, entry.key)
        r = entry.record
        worker = _worker(r)
        event = r.get("event")
        action = event.get("action") if isinstance(event, dict) else None
        if worker is None or action not in (POLICY_LOADED, *ENDS):
            continue
        current = open_.pop(worker, None)
        if current is not None:
            done.append(Segment(worker, current[0], current[1], entry.key))
        sg = r.get("socialgate")
        sha = sg.get("policy_sha256") if isinstance(sg, dict) else None
        if action == POLICY_LOADED and isinstance(sha, str) and sha:
            open_[worker] = (sha, entry.key)
    done.extend(Segment(w, sha, since, last) for w, (sha, since) in open_.items())
    return done


def drifts(entries: Iterable[Entry], grace: dt.timedelta = DEFAULT_GRACE) -> list[Drift]:
    """Every window longer than ``grace`` in which two workers enforced different policies."""
    by_worker: dict[str, list[Segment]] = {}
    for seg in segments(entries):
        by_worker.setdefault(seg.worker, []).append(seg)
    found: list[Drift] = []
    for a, b in itertools.combinations(sorted(by_worker), 2):
        merged: list[Drift] = []
        for sa in by_worker[a]:
            for sb in by_worker[b]:
                since, until = max(sa.since, sb.since), min(sa.until, sb.until)
                if sa.sha256 == sb.sha256 or since >= until:
                    continue
                prev = merged[-1] if merged else None
                if (
                    prev is not None
                    and (prev.sha256_a, prev.sha256_b) == (sa.sha256, sb.sha256)
                    and prev.until == since
                ):
                    merged[-1] = Drift(a, sa.sha256, b, sb.sha256, prev.since, until)
                else:
                    merged.append(Drift(a, sa.sha256, b, sb.sha256, since, until))
        found.extend(d for d in merged if d.seconds > grace.total_seconds())
    return sorted(found, key=lambda d: (d.since, d.worker_a, d.worker_b))
