"""The chain writer: one background thread owns the live log file.

Callers hand over records and get a `concurrent.futures.Future` that resolves
once the record is written (and fsynced, per mode), or hand over a list with
`submit_batch` and get one callback for all of them (the event loop's group
commit, `commit.py`). The thread drains the queue in batches: one ``write``
and at most one ``fsync`` per batch (group commit), so the cost of
durability is shared by everyone waiting.

Fail closed: a failed write or fsync fails every record of the batch, marks
the writer broken and closes the file. It is never retried on the same file
(after an fsync error the kernel may have dropped the data: Linux reports the
error once and then calls the pages clean). Recovery, tried every
``retry_seconds``, moves the failed file aside and starts a new segment: a
record carrying ``socialgate.chain.break`` that links to the last record
known to be written.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import logging
import os
import pathlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy_addons.audit import checkpoints as cps
from proxy_addons.audit.chain import GENESIS, chain_of, parse_line, record_hmac
from proxy_addons.audit.files import last_rotation, rotated_name
from proxy_addons.audit.record import Record, event_record
from proxy_addons.audit.sink import Renderer
from proxy_addons.errors import AuditError, AuditUnavailable

logger = logging.getLogger(__name__)

FSYNC_MODES = ("always", "interval", "never")
_TAIL_BYTES = 1 << 20  # a record is ~1 KB; the last complete one is within this


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


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass(frozen=True, slots=True)
class Tail:
    """What a log file ends with, as found at start."""

    worker: str | None
    seq: int
    hash: str
    action: str | None  # event.action of the last record
    torn: bytes  # an incomplete last line (crash mid-write), else b""


def read_tail(path: pathlib.Path, key: bytes) -> Tail:
    """The last record of an existing log (raises `AuditError` if it does not verify)."""
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        start = max(0, size - _TAIL_BYTES)
        fh.seek(start)
        data = fh.read()
    torn = b""
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        data, torn = data[:cut], data[cut:]
    lines = data.split(b"\n")[:-1]
    if start > 0:
        lines = lines[1:]  # the first may be a partial line
    if not lines:
        if start > 0:
            raise AuditError(
                f"audit log {path}: no complete record in its last {_TAIL_BYTES} bytes"
            )
        return Tail(None, 0, GENESIS, None, torn)
    try:
        record = parse_line(lines[-1].decode("utf-8"))
        chain = chain_of(record)
    except (ValueError, UnicodeDecodeError) as e:
        raise AuditError(
            f"audit log {path}: its last record is not valid ({e}); move the file aside"
        ) from None
    if record_hmac(key, record) != chain["hash"]:
        raise AuditError(
            f"audit log {path}: its last record does not verify under the audit key "
            "(wrong socialgate_audit_key, or the log was altered); move the file aside"
        )
    action = record.get("event", {}).get("action")
    return Tail(chain["worker"], chain["seq"], chain["hash"], action, torn)


class _Slot:
    """The outcome of one record of a `submit_batch` batch (read by the writer thread only)."""

    __slots__ = ("error", "settled")

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.settled = False

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


class _Item:
    __slots__ = ("future", "record")

    def __init__(
        self, record: Record, future: concurrent.futures.Future[None] | _Slot | None
    ) -> None:
        self.record = record
        self.future = future


BatchDone = Callable[[list[BaseException | None]], None]


class _Batch:
    """Records handed over together; ``on_done`` gets each one's error (or None) once."""

    __slots__ = ("items", "on_done", "slots")

    def __init__(self, records: list[Record], on_done: BatchDone) -> None:
        self.slots = [_Slot() for _ in records]
        self.items = [_Item(r, slot) for r, slot in zip(records, self.slots, strict=True)]
        self.on_done = on_done

    def finish(self) -> None:
        outcomes = [slot.outcome() for slot in self.slots]
        try:
            self.on_done(outcomes)
        except Exception:
            logger.exception("socialgate audit: batch callback failed")


class _Stop:
    __slots__ = ("done", "record")

    def __init__(self, record: Record | None) -> None:
        self.record = record
        self.done = threading.Event()


class ChainWriter:
    def __init__(
        self,
        config: WriterConfig,
        key: bytes,
        signing_key: Ed25519PrivateKey | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = _utcnow,
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
        self._queue: queue.SimpleQueue[_Item | _Batch | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
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

    def render(
        self, record: Record, seq: int, prev: str, brk: dict[str, Any] | None = None
    ) -> tuple[bytes, str]:
        """The line for ``record`` as record ``seq`` after ``prev``, and its hash."""
        return self._renderer.render(record, self.worker, seq, prev, brk)

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
        self._thread = threading.Thread(target=self._run, name="socialgate-audit", daemon=True)
        self._thread.start()

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
            tail = read_tail(self.path, self._key) if st.st_size else self._rotated_tail()
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
        prefix = b""
        brk: dict[str, Any] | None = None
        if tail.torn:
            # Keep the fragment as evidence; end its line so ours parses.
            prefix = b"\n"
            brk = {
                "reason": reason or "torn-tail",
                "torn_bytes": len(tail.torn),
                "torn_sha256": hashlib.sha256(tail.torn).hexdigest(),
            }
            logger.error(
                "socialgate audit: %s ends with an incomplete record (%d bytes, crash mid-write?): "
                "kept, and the chain continues from seq %d",
                self.path,
                len(tail.torn),
                self.seq,
            )
        if reason is not None:
            brk = {**(brk or {}), "reason": reason, "error": error, "durable_seq": self.durable_seq}
        first = dict(first)
        if reason is None and tail.worker is not None and tail.action != "audit-stopped":
            first["socialgate"] = {**first.get("socialgate", {}), "previous_shutdown": "unclean"}
        data, hash_ = self.render(first, self.seq + 1, self.hash, brk)
        _write_all(fd, prefix + data)
        os.fsync(fd)
        if not st.st_size:
            _fsync_dir(self.path.parent)
        self.seq, self.hash = self.seq + 1, hash_
        self.durable_seq = self.seq
        self._size += len(prefix) + len(data)
        self._opened_at = self._clock()
        self._dirty_since = None

    def _rotated_tail(self) -> Tail:
        """An empty live file (crash right after a rotation): continue from the newest rotated."""
        rotated = last_rotation(self.path)
        if rotated is None:
            return Tail(None, 0, GENESIS, None, b"")
        tail = read_tail(rotated, self._key)
        return Tail(tail.worker, tail.seq, tail.hash, tail.action, b"")

    def close(self, stopped: Record | None) -> None:
        """Write ``stopped``, a final checkpoint, fsync and close (waits for the thread)."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        stop = _Stop(stopped)
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
        self._queue.put(_Item(record, future))
        return future

    def submit_batch(self, records: list[Record], on_done: BatchDone) -> None:
        """Hand over several records at once; ``on_done`` runs in the writer thread with
        each record's error (None once written, and fsynced with fsync=always).

        One hand-over and one callback per batch: under load the event loop gathers
        the records of a whole commit cycle, so the thread is woken once for all of them.
        """
        if self._closed or self._thread is None:
            raise AuditUnavailable(f"audit log {self.path} is closed")
        self._queue.put(_Batch(records, on_done))

    # --- the writer thread ----------------------------------------------

    def _deadline(self) -> float | None:
        deadlines = []
        if self.broken:
            deadlines.append(self._retry_at)
        else:
            if self._dirty_since is not None and self.config.fsync == "interval":
                deadlines.append(self._dirty_since + self.config.fsync_interval)
            if self.config.checkpoint_seconds and self._signing_key and self.seq > self._cp_seq:
                deadlines.append(self._cp_at + self.config.checkpoint_seconds)
            if self.config.rotate_seconds and self._size:
                deadlines.append(self._opened_at + self.config.rotate_seconds)
        return min(deadlines) if deadlines else None

    def _run(self) -> None:
        while True:
            deadline = self._deadline()
            batch: list[_Item | _Batch | _Stop] = []
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
            stop = next((i for i in batch if isinstance(i, _Stop)), None)
            items: list[_Item] = []
            batches: list[_Batch] = []
            for i in batch:
                if isinstance(i, _Item):
                    items.append(i)
                elif isinstance(i, _Batch):
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

    def _reject(self, item: _Item, error: AuditUnavailable) -> None:
        if item.future is not None:
            if not item.future.done():
                item.future.set_exception(error)
        else:
            action = item.record.get("event", {}).get("action", "?")
            logger.error("socialgate audit: record LOST (%s): %s", action, error)

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

    def _write_batch(self, items: list[_Item]) -> None:
        if self.broken is None:
            self._maybe_rotate()
        if not self._usable():
            error = AuditUnavailable(f"audit log {self.path} cannot be written: {self.broken}")
            for item in items:
                self._reject(item, error)
            return
        chunks: list[bytes] = []
        accepted: list[_Item] = []
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
            _write_all(self._fd, data)
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

    def _fail_items(self, items: list[_Item]) -> None:
        error = AuditUnavailable(f"audit log {self.path} cannot be written: {self.broken}")
        for item in items:
            self._reject(item, error)

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
            first = event_record(
                "audit-started",
                f"audit trail resumed after {self.broken}: new segment",
                now=self._now(),
                category=["process"],
                type_=["start"],
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

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _timers(self) -> None:
        now = self._clock()
        if self.broken:
            if now >= self._retry_at:
                self._recover()
            return
        if self.config.rotate_seconds and now - self._opened_at >= self.config.rotate_seconds:
            self._maybe_rotate()
        if (
            self.config.fsync == "interval"
            and self._dirty_since is not None
            and now - self._dirty_since >= self.config.fsync_interval
        ):
            self._sync()
        if (
            self._signing_key
            and self.config.checkpoint_seconds
            and self.seq > self._cp_seq
            and now - self._cp_at >= self.config.checkpoint_seconds
        ):
            self._checkpoint()

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
            _write_all(self._fd, data)
        except OSError as e:
            self._fail("write-error", e)
            return False
        self.seq, self.hash = self.seq + 1, hash_
        self._size += len(data)
        return self._sync()

    def _maybe_rotate(self) -> None:
        cfg = self.config
        by_size = cfg.rotate_bytes and self._size >= cfg.rotate_bytes
        by_time = cfg.rotate_seconds and self._clock() - self._opened_at >= cfg.rotate_seconds
        if not (by_size or by_time) or self._fd is None or not self._size:
            return
        aside = rotated_name(self.path, self._now())
        note = event_record(
            "audit-rotated",
            f"audit log rotated: this file becomes {aside.name}; the chain continues in a new "
            f"{self.path.name}",
            now=self._now(),
            category=["process"],
            type_=["change"],
            socialgate={"rotated_to": aside.name, "reason": "size" if by_size else "time"},
        )
        if not self._append_own(note):
            return
        if self._signing_key:
            self._sign_checkpoint()
        try:
            os.rename(self.path, aside)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o640)
        except OSError as e:
            self._fail("rotation-error", e)
            return
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._close_fd()
        self._fd, self._ino, self._size = fd, os.fstat(fd).st_ino, 0
        self._opened_at = self._clock()
        try:
            _fsync_dir(self.path.parent)
        except OSError as e:
            self._fail("fsync-error", e)

    def _checkpoint(self) -> None:
        n = self._cp_n + 1
        record = event_record(
            "checkpoint",
            f"checkpoint {n} of {self.worker}",
            now=self._now(),
            category=["process"],
            type_=["info"],
            socialgate={"checkpoint": {"n": n, "file": self._cp_file_name()}},
        )
        if self._append_own(record):
            self._sign_checkpoint()

    def _cp_file_name(self) -> str:
        path = self.config.checkpoints_path
        return path.name if path else ""

    def _sign_checkpoint(self) -> None:
        """Sign the chain head (already fsynced) into the checkpoint file."""
        path = self.config.checkpoints_path
        self._cp_at = self._clock()
        if path is None or self._signing_key is None or self.seq == self._cp_seq:
            return
        body = cps.sign(
            self._signing_key,
            worker=self.worker,
            n=self._cp_n + 1,
            seq=self.seq,
            hash_=self.hash,
            log_name=self.path.name,
            now=self._now(),
        )
        try:
            cps.append_checkpoint(path, body)
        except OSError as e:
            logger.error("socialgate audit: cannot write checkpoint to %s: %s", path, e.strerror)
            return
        self._cp_n += 1
        self._cp_seq = self.seq

    def _shutdown(self, stop: _Stop) -> None:
        if stop.record is not None and self._append_own(stop.record) and self._signing_key:
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
            if isinstance(item, _Item):
                self._reject(item, closed)
            elif isinstance(item, _Batch):
                for member in item.items:
                    self._reject(member, closed)
                item.finish()
        stop.done.set()
