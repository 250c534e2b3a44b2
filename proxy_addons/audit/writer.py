"""The chain writer: one background thread owns the live log file.

Callers hand over records and get a `concurrent.futures.Future` that resolves
once the record is written (and fsynced, per mode), or hand over a list with
`submit_batch` and get one callback for all of them (the event loop's group
commit, `commit.py`). The thread drains the queue in batches: one ``write``
and at most one ``fsync`` per batch (group commit), so the cost of
durability is shared by everyone waiting.

The writer is built in layers, one module each: `livefile.LiveFile` (the
chain's position in the live file, failing closed and recovering),
`upkeep.Upkeep` (rotation, checkpoints, timed fsync) and, here, the thread,
its queue and batching; `handover` holds what callers put on the queue.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import threading
from collections.abc import Sequence

from proxy_addons.audit import checkpoints as cps
from proxy_addons.audit.durable import write_all
from proxy_addons.audit.handover import Batch, BatchDone, Item, Stop
from proxy_addons.audit.livefile import FSYNC_MODES, WriterConfig
from proxy_addons.audit.record import Record
from proxy_addons.audit.upkeep import Upkeep
from proxy_addons.errors import AuditError, AuditUnavailable

logger = logging.getLogger(__name__)

# The writer's public face: its configuration and batch callback type are defined beside
# the parts that use them, and imported from here.
__all__ = ["FSYNC_MODES", "BatchDone", "ChainWriter", "WriterConfig"]


class ChainWriter(Upkeep):
    """Appends records to one live log from a thread of its own; see the module docstring."""

    # Set by `open`: until then there is nothing to queue for (`submit` refuses).
    _queue: queue.SimpleQueue[Item | Batch | Stop]
    _thread: threading.Thread | None = None
    _closed = False

    # --- start / stop (caller's thread) ----------------------------------

    def open(self, started: Record) -> None:
        """Open the log, continue its chain, write ``started``; raises `AuditError`."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open_live(started, reason=None)
        except OSError as e:
            self._close_fd()
            raise AuditError(f"cannot open audit log {self.path}: {e.strerror}") from None
        self._cp_n = (
            cps.last_checkpoint_number(self.config.checkpoints_path, self.worker)
            if (self.config.checkpoints_path)
            else 0
        )
        self._cp_at = self._clock()
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="socialgate-audit", daemon=True)
        self._thread.start()

    def close(self, stopped: Record | None) -> None:
        """Write ``stopped``, a final checkpoint, fsync and close (waits for the thread)."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        stop = Stop(stopped)
        self._queue.put(stop)
        self._thread.join()

    # --- submission (any thread) -----------------------------------------

    def submit(
        self, record: Record, *, wait: bool = True
    ) -> concurrent.futures.Future[None] | None:
        if self._closed or self._thread is None:
            raise AuditUnavailable(f"audit log {self.path} is closed")
        future: concurrent.futures.Future[None] | None = (
            concurrent.futures.Future() if wait else None
        )
        self._queue.put(Item(record, future))
        return future

    def submit_batch(
        self, records: list[Record], on_done: BatchDone, waited: Sequence[bool] | None = None
    ) -> None:
        """Hand over several records at once; ``on_done`` runs in the writer thread with
        each record's error (None once written, and fsynced with fsync=always).
        ``waited[i]`` False: nobody waits for record i (its failure is a lost record).

        One hand-over and one callback per batch: under load the event loop gathers
        the records of a whole commit cycle, so the thread is woken once for all of them.
        """
        if self._closed or self._thread is None:
            raise AuditUnavailable(f"audit log {self.path} is closed")
        self._queue.put(Batch(records, on_done, waited))

    # --- the writer thread ----------------------------------------------

    def _run(self) -> None:
        while True:
            deadline = self._deadline()
            batch: list[Item | Batch | Stop] = []
            try:
                if deadline is None:
                    batch.append(self._queue.get())
                else:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - self._clock())))
            except queue.Empty:
                pass
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = next((i for i in batch if isinstance(i, Stop)), None)
            items: list[Item] = []
            batches: list[Batch] = []
            for i in batch:
                if isinstance(i, Item):
                    items.append(i)
                elif isinstance(i, Batch):
                    batches.append(i)
                    items.extend(i.items)
            try:
                if items:
                    self._write_batch(items)
                self._timers()
            except Exception:  # a bug must not kill the only writer silently
                logger.exception("socialgate audit: writer error")
                for item in items:
                    self._reject(item, AuditUnavailable("audit writer error"))
            for b in batches:
                b.finish()
            if stop is not None:
                self._shutdown(stop)
                return

    def _reject(self, item: Item, error: AuditUnavailable) -> None:
        if not item.waited:
            # An event that happened and is not on the record: counted by kind, and the
            # break record that starts the next segment says how many (`LiveFile.lost`).
            self._count_lost(item.record)
        if item.future is not None:
            if not item.future.done():
                item.future.set_exception(error)
        else:
            action = item.record.get("event", {}).get("action", "?")
            logger.error("socialgate audit: record LOST (%s): %s", action, error)

    def _write_batch(self, items: list[Item]) -> None:
        if self.broken is None:
            self._maybe_seal()  # a record waiting past its epoch's end goes in the next one
            self._maybe_rotate()
        if not self._usable():
            error = AuditUnavailable(f"audit log {self.path} cannot be written: {self.broken}")
            for item in items:
                self._reject(item, error)
            return
        chunks: list[bytes] = []
        accepted: list[Item] = []
        seq, prev = self.seq, self.hash
        for item in items:
            if item.future is not None and not item.future.set_running_or_notify_cancel():
                item.future = None  # the waiter went away; the attempt is still recorded
            try:
                data, hash_ = self.render(item.record, seq + 1, prev)
            except (TypeError, ValueError, KeyError) as e:
                logger.error("socialgate audit: record rejected: %s", e)
                self._reject(item, AuditUnavailable(f"audit record rejected: {e}"))
                continue
            seq, prev = seq + 1, hash_
            chunks.append(data)
            accepted.append(item)
        if not accepted:
            return
        data = b"".join(chunks)
        assert self._fd is not None
        try:
            write_all(self._fd, data)
        except OSError as e:
            self._fail("write-error", e)
            self._fail_items(accepted)
            return
        if self.config.fsync == "always":
            try:
                os.fsync(self._fd)
            except OSError as e:
                self._fail("fsync-error", e)
                self._fail_items(accepted)
                return
        self.seq, self.hash = seq, prev
        self._size += len(data)
        if self.config.fsync == "always":
            self.durable_seq = seq
        elif self._dirty_since is None:
            self._dirty_since = self._clock()
        for item in accepted:
            if item.future is not None:
                item.future.set_result(None)
        if (
            self._signing_key
            and self.config.checkpoint_records
            and self.seq - self._cp_seq >= self.config.checkpoint_records
        ):
            self._checkpoint()

    def _fail_items(self, items: list[Item]) -> None:
        error = AuditUnavailable(f"audit log {self.path} cannot be written: {self.broken}")
        for item in items:
            self._reject(item, error)

    def _shutdown(self, stop: Stop) -> None:
        written = stop.record is not None and self._append_own(stop.record)
        if written and self._state is not None:
            self._seal_epoch("shutdown")  # signs the checkpoint; the stopped host holds k_n+1
        elif written and self._signing_key:
            self._sign_checkpoint()
        elif not self.broken:
            self._sync()
        if self.broken:
            logger.critical("socialgate audit: stopped while %s cannot be written", self.path)
        self._close_fd()
        # Anything that raced the stop is lost: say so rather than drop it quietly.
        closed = AuditUnavailable(f"audit log {self.path} is closed")
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Item):
                self._reject(item, closed)
            elif isinstance(item, Batch):
                for member in item.items:
                    self._reject(member, closed)
                item.finish()
        stop.done.set()
