"""Verify's view of forward-secure sealing: every epoch of a chain sealed, in order, in time.

A chain of format 2 (`epochs.py`) numbers its epochs 0, 1, 2 … and ends each one with an
``epoch-sealed`` record under that epoch's key. `EpochTracker` follows one worker's records
(already checked for HMAC and linkage by `verify._Walker`) and finds:

* an epoch that goes backwards or repeats, or a record after its epoch's seal: a key of a
  closed epoch used again (CVE-2023-31439: a later key must not reseal earlier data);
* an epoch that begins before the previous one was sealed (its tail removed, or records
  re-sealed under a later key), and epoch numbers skipped (whole epochs removed);
* a seal whose count of records or start time does not match the log;
* format 1 records (one static key) after format 2 ones: a downgrade.

Records dated outside their epoch are a note, not damage (a clock stepped back by NTP does
that; the epoch numbers and keys, not the clock, are what stop re-sealing). It also reports
each epoch (records, first and last time, sealed how) so the investigator
sees where proof by sealing stops: the end of the last sealed epoch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# A record is built (and stamped) on the event loop slightly before the writer thread
# seals it, possibly just after an epoch step; a skew this small is not evidence of anything.
SLACK = dt.timedelta(seconds=120)


@dataclass(slots=True)
class EpochInfo:
    n: int
    records: int = 0  # records of the epoch, its seal not counted
    first: str = ""  # @timestamp of its first and last record
    last: str = ""
    sealed: str | None = None  # the seal's reason (elapsed, shutdown, restart, append)
    start: str = ""
    end: str = ""
    late: bool = False  # sealed at a restart, after the epoch had ended (a crash)


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where a purged chain's remaining records continue (from a verified purge record)."""

    seq: int
    hash: str
    epoch: int | None
    sealed: bool  # the last purged record was its epoch's seal
    where: str  # the purge record, as file:line


def _time(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


class EpochTracker:
    """Follows the epochs of one worker's chain (records in chain order, verified)."""

    def __init__(
        self,
        worker: str,
        problem: Callable[[str, int, str], None],
        note: Callable[[str, int, str], None],
    ) -> None:
        self.worker = worker
        self.problem = problem
        self.note = note
        self.epochs: list[EpochInfo] = []
        self.format1 = 0  # records without an epoch
        self.cur: EpochInfo | None = None
        self.closed = False  # the current epoch's seal has been seen
        self.prev_end = ""
        self.prev_reason = ""
        self.partial = False  # the first epoch lost its earlier records to a purge

    def start_at(self, anchor: Anchor) -> None:
        """The chain continues after a purge: as if its last purged record had been read."""
        if anchor.epoch is not None:
            self.cur = EpochInfo(anchor.epoch)
            self.closed = anchor.sealed
            self.partial = not anchor.sealed

    def record(self, file: str, line: int, chain: dict[str, Any], rec: dict[str, Any]) -> None:
        epoch = chain.get("epoch")
        if epoch is None:
            if self.cur is not None:
                self.problem(
                    file, line,
                    f"seq {chain['seq']}: format 1 record (static key) after forward-sealed "
                    "records: sealing cannot be turned off, this record is not what the proxy "
                    "wrote",
                )  # fmt: skip
            else:
                self.format1 += 1
            return
        seq = chain["seq"]
        cur = self.cur
        if cur is None:
            if epoch != 0:
                self.problem(
                    file, line, f"seq {seq}: chain begins in epoch {epoch}: epochs 0-{epoch - 1} "
                    "missing",
                )  # fmt: skip
            self._open(epoch)
        elif epoch == cur.n:
            if self.closed:
                self.problem(
                    file, line,
                    f"seq {seq}: record of epoch {epoch} after that epoch was sealed (a closed "
                    "epoch's key used again)",
                )  # fmt: skip
        elif epoch < cur.n:
            self.problem(
                file, line,
                f"seq {seq}: epoch {epoch} after epoch {cur.n}: epochs go backwards (an old "
                "epoch's key replayed)",
            )  # fmt: skip
            return
        else:
            if epoch > cur.n + 1:
                self.problem(
                    file, line,
                    f"seq {seq}: epoch {epoch} follows epoch {cur.n}: epochs "
                    f"{cur.n + 1}-{epoch - 1} missing (removed)",
                )  # fmt: skip
            elif not self.closed:
                self.problem(
                    file, line,
                    f"seq {seq}: epoch {epoch} begins but epoch {cur.n} was never sealed (its "
                    "last records removed, or records re-sealed under a later key)",
                )  # fmt: skip
            self._open(epoch)
        assert self.cur is not None
        stamp = rec.get("@timestamp")
        seal = (rec.get("socialgate") or {}).get("epoch")
        if (rec.get("event") or {}).get("action") == "epoch-sealed" and isinstance(seal, dict):
            self._seal(file, line, seq, seal)
            return
        self.cur.records += 1
        if isinstance(stamp, str):
            self.cur.first = self.cur.first or stamp
            self.cur.last = stamp

    def superseded(self, n: int) -> None:
        """The last ``n`` records were abandoned by a failed write: the seal does not count them."""
        if self.cur is not None:
            self.cur.records = max(0, self.cur.records - n)

    def _open(self, n: int) -> None:
        if self.cur is not None and self.cur not in self.epochs and self.cur.records:
            self.epochs.append(self.cur)  # an unsealed epoch (already reported)
        self.cur = EpochInfo(n)
        self.closed = False

    def _seal(self, file: str, line: int, seq: int, seal: dict[str, Any]) -> None:
        cur = self.cur
        assert cur is not None
        where = f"seq {seq}: seal of epoch {cur.n}"
        if seal.get("n") != cur.n:
            self.problem(file, line, f"{where} names epoch {seal.get('n')}")
        if seal.get("records") != cur.records and not self.partial:
            self.problem(
                file, line,
                f"{where} counts {seal.get('records')} records, the log has {cur.records}",
            )  # fmt: skip
        start, end = str(seal.get("start", "")), str(seal.get("end", ""))
        if self.prev_end and self.prev_reason in ("elapsed", "append") and start != self.prev_end:
            self.problem(
                file, line,
                f"{where} starts at {start}, not where epoch {cur.n - 1} ended ({self.prev_end})",
            )  # fmt: skip
        elif self.prev_end and start < self.prev_end:
            self.problem(file, line, f"{where} starts at {start}, before epoch {cur.n - 1} ended")
        t0, t1 = _time(start), _time(end)
        for stamp in (cur.first, cur.last):
            t = _time(stamp)
            if t and t0 and t1 and not (t0 - SLACK <= t <= t1 + SLACK):
                self.note(
                    file, line,
                    f"{where}: a record dated {stamp} lies outside the epoch ({start} to {end}) "
                    "(the clock was stepped?)",
                )  # fmt: skip
                break
        cur.sealed, cur.start, cur.end = str(seal.get("reason", "?")), start, end
        cur.late = cur.sealed == "restart"
        self.epochs.append(cur)
        self.closed, self.partial = True, False
        self.prev_end, self.prev_reason = end, cur.sealed

    def finish(self) -> None:
        if self.cur is not None and not self.closed and self.cur not in self.epochs:
            self.epochs.append(self.cur)

    def last_sealed(self) -> EpochInfo | None:
        return next((e for e in reversed(self.epochs) if e.sealed), None)
