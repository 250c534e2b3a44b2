"""What callers hand the writer thread: records with their futures, batches, the stop.

A `Batch` (the event loop's group commit, `commit.py`) carries one `Slot`
per record instead of a `concurrent.futures.Future`: the thread settles the
slots, then calls the batch's ``on_done`` once with every outcome.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Sequence

from proxy_addons.audit.record import Record
from proxy_addons.errors import AuditUnavailable

logger = logging.getLogger("proxy_addons.audit.writer")  # the writer thread's messages

BatchDone = Callable[[list[BaseException | None]], None]


class Slot:
    """The outcome of one record of a `submit_batch` batch (read by the writer thread only)."""

    __slots__ = ("error", "settled", "waited")

    def __init__(self, waited: bool = True) -> None:
        self.error: BaseException | None = None
        self.settled = False
        self.waited = waited  # False: nobody waits, a failure loses the record

    def set_running_or_notify_cancel(self) -> bool:
        return True

    def done(self) -> bool:
        return self.settled

    def set_result(self, _: None) -> None:
        self.settled = True

    def set_exception(self, error: BaseException) -> None:
        self.error, self.settled = error, True

    def outcome(self) -> BaseException | None:
        if not self.settled:
            return AuditUnavailable("audit record was not written")
        return self.error


class Item:
    __slots__ = ("future", "record")

    @property
    def waited(self) -> bool:
        """Whether someone waits for this record (else a failure loses it)."""
        f = self.future
        return f is not None and (not isinstance(f, Slot) or f.waited)

    def __init__(
        self, record: Record, future: concurrent.futures.Future[None] | Slot | None
    ) -> None:
        self.record = record
        self.future = future


class Batch:
    """Records handed over together; ``on_done`` gets each one's error (or None) once."""

    __slots__ = ("items", "on_done", "slots")

    def __init__(
        self, records: list[Record], on_done: BatchDone, waited: Sequence[bool] | None = None
    ) -> None:
        flags = [True] * len(records) if waited is None else list(waited)
        self.slots = [Slot(w) for w in flags]
        self.items = [Item(r, slot) for r, slot in zip(records, self.slots, strict=True)]
        self.on_done = on_done

    def finish(self) -> None:
        outcomes = [slot.outcome() for slot in self.slots]
        try:
            self.on_done(outcomes)
        except Exception:
            logger.exception("socialgate audit: batch callback failed")


class Stop:
    __slots__ = ("done", "record")

    def __init__(self, record: Record | None) -> None:
        self.record = record
        self.done = threading.Event()
