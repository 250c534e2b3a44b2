"""File primitives for files other processes read or write at the same time.

An advisory ``flock`` waited for with a deadline, a capped read, and an atomic
replace (temp file, fsync, rename, fsync of the directory) so that a reader
sees either the old or the new file, never a half-written one. Errors are
plain `OSError`s: each caller words them for its own file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

# How often a waiting locker retries: short next to any deadline worth setting.
_POLL_SECONDS = 0.05


def flock_exclusive(fd: int, timeout: float) -> bool:
    """Take an exclusive ``flock`` on ``fd``, waiting up to ``timeout`` seconds.

    False when another holder kept it past the deadline. Polled rather than
    blocking, so the wait is bounded and the caller can say who holds it.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_SECONDS)


_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading, refused (`OSError`) unless it is a regular file.

    Opened with ``O_NONBLOCK``, so a named pipe at the path is refused at once
    instead of waiting for a writer for ever; a regular file reads as usual.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a plain file")
            raise OSError(errno.EINVAL, f"not a regular file ({kind})", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_capped(path: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of ``path``: more than ``limit`` means too large.

    The cap keeps a mistaken file (a log, a dump) from being read whole.
    """
    with open_regular(path) as f:
        return f.read(limit + 1)


def replace_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file in the same directory, fsync, rename.

    The new file keeps the old one's mode and (where allowed) owner. Call
    `fsync_directory` afterwards to make the rename itself durable.
    """
    try:
        old = os.stat(path)
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if old is not None:
            os.chmod(tmp, stat.S_IMODE(old.st_mode))
            with contextlib.suppress(PermissionError):
                os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def fsync_directory(directory: Path) -> None:
    """Make the directory's entries (a rename, a new file) durable."""
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
