"""Durable writes: every byte handed to the kernel, and a new name fsynced into its directory.

Shared by everything that appends to the trail (the writer thread, the admin
CLI's `append`, checkpoint files): ``os.write`` may write less than asked.
"""

from __future__ import annotations

import os
import pathlib


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(path: pathlib.Path) -> None:
    """Make a file created (or renamed) in ``path`` survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
