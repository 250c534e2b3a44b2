"""The live log file: continuing its chain, appending sealed lines, failing closed.

State and file handling of the writer thread (`writer.ChainWriter` adds the
thread and the queue, `upkeep.Upkeep` rotation, checkpoints and timers).

Fail closed: a failed write or fsync marks the file broken and closes it. It
is never retried on the same file (after an fsync error the kernel may have
dropped the data: Linux reports the error once and then calls the pages
clean). Recovery, tried every ``retry_seconds``, moves the failed file aside
and starts a new segment: a record carrying ``socialgate.chain.break`` that
links to the last record known to be written.

Forward-secure sealing (``seal_dir`` set, `epochs.py`): records are sealed under the current
epoch's key, kept in the worker's state file. At start the writer picks up where that state
stands: an epoch that ended while the process was down (a crash) is sealed late, marked so,
before the new ``audit-started``; a crash between a seal and its key step finishes the step.
The timer that seals each epoch is in `upkeep.Upkeep`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hmac
import logging
import os
import pathlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy_addons.audit.chain import GENESIS, record_hmac
from proxy_addons.audit.durable import fsync_dir, write_all
from proxy_addons.audit.epochs import EpochState, load_state, store_state, tail_verifies
from proxy_addons.audit.files import last_rotation, rotated_name
from proxy_addons.audit.record import (
    EPOCH_SEALED,
    Record,
    epoch_sealed_record,
    event_record,
    lost_records,
    timestamp,
)
from proxy_addons.audit.sink import Renderer
from proxy_addons.audit.tail import Tail, read_tail
from proxy_addons.errors import AuditError

# The writer's parts log under one name, as they did when they were one module.
logger = logging.getLogger("proxy_addons.audit.writer")

FSYNC_MODES = ("always", "interval", "never")


@dataclass(frozen=True, slots=True)
class WriterConfig:
    path: pathlib.Path
    worker: str  # "" = continue the worker found in the log, else a new default
    fsync: str = "always"
    fsync_interval: float = 1.0
    rotate_bytes: int = 0
    rotate_seconds: float = 0.0
    checkpoints_path: pathlib.Path | None = None
    checkpoint_records: int = 1000
    checkpoint_seconds: float = 60.0
    retry_seconds: float = 1.0
    seal_dir: pathlib.Path | None = None  # forward-secure sealing: the epoch key states
    epoch_seconds: float = 900.0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LiveFile:
    """The chain's position and the open live file (used by the writer thread only)."""

    def __init__(
        self,
        config: WriterConfig,
        key: bytes,
        signing_key: Ed25519PrivateKey | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = utc_now,
        default_worker: str = "",
    ) -> None:
        self.config = config
        self.path = config.path
        self._key = key
        self._signing_key = signing_key
        self._clock = clock
        self._now = now
        self._default_worker = default_worker or config.path.name
        self.worker = ""
        self._fd: int | None = None
        self._ino = 0
        self._fresh_ino = 0  # a file we created for a recovery that then failed
        self._size = 0
        self._opened_at = 0.0
        self.seq = 0  # last record written (committed)
        self.hash = GENESIS
        self.durable_seq = 0  # last record fsynced
        self._dirty_since: float | None = None
        self.broken: str | None = None  # why, while writing is impossible
        self._break_reason = ""
        self._retry_at = 0.0
        self._last_alarm = 0.0
        self._cp_n = 0
        self._cp_seq = 0
        self._cp_at = 0.0
        self._renderer = Renderer(key)
        # Records nobody waited for that could not be written, by event.action: since
        # start (health), and since the last record written (told by the next break).
        self.lost: Counter[str] = Counter()
        self.lost_total = 0  # sum of `lost`, readable from any thread
        self._lost_unreported: Counter[str] = Counter()
        self._state: EpochState | None = None  # forward-secure sealing: the current epoch
        self._epoch_due = 0.0  # clock() at which the current epoch is sealed

    def _count_lost(self, record: Record) -> None:
        event = record.get("event")
        action = str(event.get("action", "?")) if isinstance(event, dict) else "?"
        self.lost[action] += 1
        self.lost_total += 1
        self._lost_unreported[action] += 1

    def render(
        self, record: Record, seq: int, prev: str, brk: dict[str, Any] | None = None
    ) -> tuple[bytes, str]:
        """The line for ``record`` as record ``seq`` after ``prev``, and its hash."""
        return self._renderer.render(record, self.worker, seq, prev, brk)

    def _open_live(self, first: Record, reason: str | None, error: str = "") -> None:
        """Open (creating or continuing) the live file and write ``first``, fsynced.

        ``reason`` set: a recovery after a failure; ``first`` then starts a new segment.
        """
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AuditError(
                    f"audit log {self.path} is in use by another process (one writer per file: "
                    "give each proxy process its own socialgate_audit_log)"
                ) from None
            st = os.fstat(fd)
            tail = read_tail(self.path, self._tail_ok) if st.st_size else self._rotated_tail()
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._ino, self._size = fd, st.st_ino, st.st_size
        if reason is None:
            configured = self.config.worker
            if tail.worker is not None and configured and configured != tail.worker:
                # Another worker's chain: leave it whole, start ours in a fresh file.
                os.close(fd)
                self._fd = None
                aside = rotated_name(self.path, self._now())
                os.rename(self.path, aside)
                logger.warning(
                    "socialgate audit: %s holds the chain of worker %r, not %r: moved to %s",
                    self.path,
                    tail.worker,
                    configured,
                    aside,
                )
                self._open_live(first, None)
                return
            self.worker = configured or tail.worker or self._default_worker
            self.seq, self.hash = tail.seq, tail.hash
            if self.config.seal_dir is not None:
                self._state_of(self.worker)
        prefix = b""
        brk: dict[str, Any] | None = None
        if tail.torn:
            # Keep the fragment as evidence; end its line so ours parses.
            prefix = b"\n"
            brk = tail.torn_break()
            # Designed recovery, on the record as a chain break: a WARNING, not an ERROR
            # (mitmdump exits on any error logged during start-up).
            logger.warning(
                "socialgate audit: %s ends with an incomplete record (%d bytes, crash mid-write?): "
                "kept, and the chain continues from seq %d",
                self.path,
                len(tail.torn),
                self.seq,
            )
        if reason is not None:
            brk = {**(brk or {}), "reason": reason, "error": error, "durable_seq": self.durable_seq}
            brk.update(lost_records(self._lost_unreported))
        first = dict(first)
        if reason is None and tail.worker is not None and not tail.stopped:
            first["socialgate"] = {**first.get("socialgate", {}), "previous_shutdown": "unclean"}
        if reason is None and self._state is not None:
            late = self._resume_epoch(tail)
            if late is not None:
                self._write_direct(late, prefix, brk, fsync_dir_too=not st.st_size)
                prefix, brk = b"", None
                self._step_epoch(self._now())
        self._write_direct(first, prefix, brk, fsync_dir_too=not st.st_size)
        if reason is not None:
            self._lost_unreported.clear()  # told by this break
        self._opened_at = self._clock()
        self._dirty_since = None

    def _write_direct(
        self, record: Record, prefix: bytes, brk: dict[str, Any] | None, *, fsync_dir_too: bool
    ) -> None:
        """Write one record at open (raises OSError): after a torn line, with its break."""
        assert self._fd is not None
        data, hash_ = self.render(record, self.seq + 1, self.hash, brk)
        write_all(self._fd, prefix + data)
        os.fsync(self._fd)
        if fsync_dir_too:
            fsync_dir(self.path.parent)
        self.seq, self.hash = self.seq + 1, hash_
        self.durable_seq = self.seq
        self._size += len(prefix) + len(data)

    # --- forward-secure sealing (epochs.py) --------------------------------

    def _state_of(self, worker: str) -> EpochState:
        """The worker's epoch state, loaded once; the renderer then seals under its key."""
        assert self.config.seal_dir is not None
        if self._state is None or self._state.worker != worker:
            self._state = load_state(self.config.seal_dir, worker)
            self._renderer.rekey(bytes(self._state.key), self._state.epoch)
        return self._state

    def _tail_ok(self, record: Record, chain: dict[str, Any]) -> bool:
        """Whether the last record of the log verifies (at open, before continuing it)."""
        if self.config.seal_dir is None:  # format 1: one static key
            return hmac.compare_digest(record_hmac(self._key, record), chain["hash"])
        if self.config.worker and self.config.worker != chain["worker"]:
            return True  # another worker's chain: moved aside whole, not continued

        return tail_verifies(self._state_of(chain["worker"]), self._key, record, chain)

    def _epoch_end(self, state: EpochState) -> dt.datetime:
        start = dt.datetime.fromisoformat(state.start)
        return start + dt.timedelta(seconds=self.config.epoch_seconds)

    def _resume_epoch(self, tail: Tail) -> Record | None:
        """Pick up the stored epoch at start; the late seal to write first, if one is due."""
        state = self._state
        assert state is not None
        assert self.config.seal_dir is not None
        now = self._now()
        if tail.epoch is None and self.seq and state.seq != self.seq:
            # Sealing turned on under a format-1 chain: format 2 continues it from here.
            state.seq, state.hash = self.seq, self.hash
            store_state(self.config.seal_dir, state)
        if tail.action == EPOCH_SEALED and tail.epoch == state.epoch:
            self._step_epoch(now)  # a crash between a seal and its step: finish the step
        elif self.seq == state.seq:
            # Nothing written in this epoch (it began at a stop, or just now): it begins now.
            state.start = timestamp(now)
            store_state(self.config.seal_dir, state)
        elif now >= self._epoch_end(state):
            end = timestamp(self._epoch_end(state))
            return epoch_sealed_record(
                self.worker, self._seal_body(state, "restart", end), now=now, late=True
            )
        self._set_epoch_due(now)
        return None

    def _seal_body(self, state: EpochState, reason: str, end: str) -> dict[str, Any]:
        count = self.seq - state.seq
        return {
            "n": state.epoch,
            "start": state.start,
            "end": end,
            "records": count,
            "first_seq": state.seq + 1 if count else None,
            "last_hash": self.hash,
            "reason": reason,
        }

    def _set_epoch_due(self, now: dt.datetime) -> None:
        assert self._state is not None
        left = (self._epoch_end(self._state) - now).total_seconds()
        self._epoch_due = self._clock() + max(0.0, left)

    def _step_epoch(self, now: dt.datetime) -> None:
        """Move to the next epoch: its key replaces (and erases) the current one."""
        assert self._state is not None
        assert self.config.seal_dir is not None
        new = self._state.stepped(start=timestamp(now), seq=self.seq, hash_=self.hash)
        self._state = new
        self._renderer.rekey(bytes(new.key), new.epoch)
        self._set_epoch_due(now)
        try:
            store_state(self.config.seal_dir, new)
        except AuditError as e:
            # The chain goes on under the new key; a restart will refuse the stale state.
            logger.critical("socialgate audit: %s: the previous epoch key is NOT erased", e)

    def _rotated_tail(self) -> Tail:
        """An empty live file (crash right after a rotation): continue from the newest rotated."""
        rotated = last_rotation(self.path)
        if rotated is None:
            return Tail(None, 0, GENESIS, None, b"")
        tail = read_tail(rotated, self._tail_ok)
        return Tail(tail.worker, tail.seq, tail.hash, tail.action, b"", tail.epoch, tail.stopped)

    def _usable(self) -> bool:
        if self.broken and self._clock() >= self._retry_at:
            self._recover()
        if self.broken:
            return False
        try:
            st = os.stat(self.path)
            if st.st_ino != self._ino:
                raise FileNotFoundError(errno.ENOENT, "replaced by another file")
        except FileNotFoundError as e:
            self._fail("log-file-removed", e)
            return False
        except OSError as e:
            self._fail("write-error", e)
            return False
        return True

    def _fail(self, reason: str, error: OSError) -> None:
        self.broken = f"{reason}: {error.strerror or error}"
        self._break_reason = reason
        self._close_fd()
        self._retry_at = self._clock() + self.config.retry_seconds
        self._last_alarm = self._clock()
        logger.critical(
            "socialgate audit: %s: %s. Allowed social traffic is BLOCKED (audit-unavailable) "
            "until the audit trail can be written again; last record written: seq %d.",
            self.path,
            self.broken,
            self.seq,
        )

    def _recover(self) -> None:
        now = self._clock()
        self._retry_at = now + self.config.retry_seconds
        try:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                pass
            else:
                if st.st_ino != self._fresh_ino:
                    # Never append to the file that failed: move it aside whole.
                    os.rename(self.path, rotated_name(self.path, self._now()))
            lost = sum(self._lost_unreported.values())
            first = self._own_record(
                "audit-started",
                f"audit trail resumed after {self.broken}: new segment; "
                f"{lost} record{'s' if lost != 1 else ''} lost meanwhile",
                "start",
                reason=self._break_reason,
            )
            self._open_live(first, self._break_reason, self.broken or "")
        except (OSError, AuditError) as e:
            self._close_fd()
            try:
                self._fresh_ino = os.stat(self.path).st_ino
            except OSError:
                self._fresh_ino = 0
            if now - self._last_alarm >= 60:
                self._last_alarm = now
                logger.critical("socialgate audit: %s still cannot be written: %s", self.path, e)
            return
        logger.warning(
            "socialgate audit: %s is writable again; new segment from seq %d", self.path, self.seq
        )
        self.broken = None
        self._fresh_ino = 0

    def _own_record(self, action: str, message: str, type_: str, **fields: Any) -> Record:
        """A record the writer makes about the trail itself (lifecycle, rotation, checkpoint)."""
        return event_record(
            action, message, now=self._now(), category=["process"], type_=[type_], **fields
        )

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _sync(self) -> bool:
        if self._fd is None:
            return False
        try:
            os.fsync(self._fd)
        except OSError as e:
            self._fail("fsync-error", e)
            return False
        self.durable_seq = self.seq
        self._dirty_since = None
        return True

    def _append_own(self, record: Record) -> bool:
        """Write one writer-made record (rotation, checkpoint, stop) and fsync it."""
        if not self._usable():
            return False
        try:
            data, hash_ = self.render(record, self.seq + 1, self.hash)
        except (TypeError, ValueError) as e:
            logger.error("socialgate audit: record rejected: %s", e)
            return False
        assert self._fd is not None
        try:
            write_all(self._fd, data)
        except OSError as e:
            self._fail("write-error", e)
            return False
        self.seq, self.hash = self.seq + 1, hash_
        self._size += len(data)
        return self._sync()
