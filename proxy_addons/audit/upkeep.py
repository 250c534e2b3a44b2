"""Upkeep of the live log between records: rotation, signed checkpoints, interval fsync.

Driven by the writer thread: by size after each batch (`_maybe_rotate`), by
count after each batch (`_checkpoint`), and by time whenever the thread
wakes (`_timers`, at the deadline `_deadline` gives).

Rotation renames the live file, never copies it: its last record is
``audit-rotated`` naming the new name (`files.rotated_name`), it is fsynced
and checkpointed first, and the chain continues in a fresh live file.

Forward-secure sealing: when an epoch's time is up (`_timers`, or before the next batch),
`_seal_epoch` writes its ``epoch-sealed`` record under the epoch's key, whether or not
anything was written in it (an idle epoch sealed is an idle period nobody can remove later),
signs a checkpoint, and steps the key.
"""

from __future__ import annotations

import fcntl
import logging
import os

from proxy_addons.audit import checkpoints as cps
from proxy_addons.audit.durable import fsync_dir
from proxy_addons.audit.files import rotated_name
from proxy_addons.audit.livefile import LiveFile
from proxy_addons.audit.record import epoch_sealed_record, timestamp

logger = logging.getLogger("proxy_addons.audit.writer")  # the writer thread's messages


class Upkeep(LiveFile):
    """Rotation, checkpoints and timed fsync of the live file (writer thread only)."""

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
            if self._state is not None:
                deadlines.append(self._epoch_due)
        return min(deadlines) if deadlines else None

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
        self._maybe_seal()

    def _maybe_seal(self) -> None:
        if self._state is not None and not self.broken and self._clock() >= self._epoch_due:
            self._seal_epoch("elapsed")

    def _seal_epoch(self, reason: str) -> None:
        """Seal the current epoch (``elapsed`` or ``shutdown``) and step to the next key."""
        assert self._state is not None
        now = self._now()
        body = self._seal_body(self._state, reason, timestamp(now))
        if not self._append_own(epoch_sealed_record(self.worker, body, now=now)):
            return  # the file failed: sealed once it is writable again (the epoch is due)
        if self._signing_key:
            self._sign_checkpoint()
        self._step_epoch(now)

    def _maybe_rotate(self) -> None:
        cfg = self.config
        by_size = cfg.rotate_bytes and self._size >= cfg.rotate_bytes
        by_time = cfg.rotate_seconds and self._clock() - self._opened_at >= cfg.rotate_seconds
        if not (by_size or by_time) or self._fd is None or not self._size:
            return
        aside = rotated_name(self.path, self._now())
        note = self._own_record(
            "audit-rotated",
            f"audit log rotated: this file becomes {aside.name}; the chain continues in a new "
            f"{self.path.name}",
            "change",
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
            fsync_dir(self.path.parent)
        except OSError as e:
            self._fail("fsync-error", e)

    def _checkpoint(self) -> None:
        n = self._cp_n + 1
        record = self._own_record(
            "checkpoint",
            f"checkpoint {n} of {self.worker}",
            "info",
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
