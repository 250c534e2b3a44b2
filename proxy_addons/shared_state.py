"""Reminder state shared by every worker of one host: a SQLite file (option
``socialgate_shared_state``).

Holds what `proxy_addons.reminder.Reminders` holds in memory: when each user last
acknowledged the code of conduct, and the single-use acknowledge nonces. With it, a
user acknowledges once per ``reminder.every`` whichever worker serves the next
request, and a nonce issued by one worker is redeemed once, on any worker: taking a
nonce is one ``DELETE … RETURNING`` in a write transaction, which SQLite serialises
across processes.

WAL mode: readers (``due``, on every exempt page load) never wait for a writer; the
busy timeout bounds how long a write waits for another worker's. Every SQLite error
becomes `StateUnavailable`; the reminder desk then errs on the side of reminding.
Pure: no mitmproxy; stdlib sqlite3 only.
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from proxy_addons.errors import StateUnavailable
from proxy_addons.reminder import NONCE_TTL, Pending, new_nonce

SCHEMA_VERSION = 1
BUSY_TIMEOUT = 0.5  # seconds a write waits for another worker's (the event loop waits too)
MAX_PENDING_PER_USER = 20  # unredeemed nonces kept per user (reloads of the reminder page)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS acknowledged (user TEXT PRIMARY KEY, at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, user TEXT NOT NULL, "
    "issued REAL NOT NULL, ref TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS nonces_by_user ON nonces (user, issued)",
    "CREATE INDEX IF NOT EXISTS nonces_by_age ON nonces (issued)",
)


def _ts(when: dt.datetime) -> float:
    return when.timestamp()


def _check_path(path: pathlib.Path) -> None:
    """Refuse a path SQLite must not create or open (a directory, a missing directory)."""
    if not path.parent.is_dir():
        raise StateUnavailable(f"directory {path.parent} does not exist")
    try:
        st = path.stat()
    except FileNotFoundError:
        # Created here, owner-only: it holds who acknowledged when, and live nonces.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except OSError as e:
        raise StateUnavailable(f"cannot read {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise StateUnavailable(f"{path} is not a regular file")


class SharedReminders:
    """`proxy_addons.reminder.Reminders`, in a SQLite file several processes share."""

    def __init__(self, path: pathlib.Path) -> None:
        """Open (creating if absent) the store at ``path``; raises StateUnavailable."""
        self.path = path
        _check_path(path)
        try:
            self.db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            with self._write():
                version = self.db.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, SCHEMA_VERSION):
                    raise StateUnavailable(f"{path}: unknown schema version {version}")
                for statement in _SCHEMA:  # (executescript would commit first)
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as e:
            raise StateUnavailable(f"{path}: {e}") from None

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE: the write lock is taken up front)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def due(self, user: str, every: dt.timedelta, now: dt.datetime) -> bool:
        try:
            row = self.db.execute("SELECT at FROM acknowledged WHERE user = ?", (user,)).fetchone()
        except sqlite3.Error as e:
            raise StateUnavailable(f"{self.path}: {e}") from None
        return row is None or _ts(now) - row[0] >= every.total_seconds()

    def issue(self, user: str, ref: str, now: dt.datetime) -> str:
        nonce = new_nonce()
        try:
            with self._write():
                self.db.execute("DELETE FROM nonces WHERE issued < ?", (_ts(now - NONCE_TTL),))
                self.db.execute(
                    "DELETE FROM nonces WHERE user = ? AND nonce NOT IN (SELECT nonce FROM "
                    "nonces WHERE user = ? ORDER BY issued DESC LIMIT ?)",
                    (user, user, MAX_PENDING_PER_USER - 1),
                )
                self.db.execute(
                    "INSERT INTO nonces (nonce, user, issued, ref) VALUES (?, ?, ?, ?)",
                    (nonce, user, _ts(now), ref),
                )
        except sqlite3.Error as e:
            raise StateUnavailable(f"{self.path}: {e}") from None
        return nonce

    def acknowledge(self, user: str, nonce: str, now: dt.datetime) -> Pending | None:
        """The pending reminder this nonce answers, if it is the user's and fresh (taken)."""
        try:
            with self._write():
                row = self.db.execute(
                    "DELETE FROM nonces WHERE nonce = ? AND user = ? AND issued >= ? "
                    "RETURNING issued, ref",
                    (nonce, user, _ts(now - NONCE_TTL)),
                ).fetchone()
                if row is None:
                    return None
                self.db.execute(
                    "INSERT INTO acknowledged (user, at) VALUES (?, ?) "
                    "ON CONFLICT (user) DO UPDATE SET at = max(at, excluded.at)",
                    (user, _ts(now)),
                )
        except sqlite3.Error as e:
            raise StateUnavailable(f"{self.path}: {e}") from None
        return Pending(user, dt.datetime.fromtimestamp(row[0], dt.UTC), str(row[1]))

    def withdraw(self, user: str, at: dt.datetime) -> None:
        """Undo the acknowledgement made at ``at`` (its record could not be written)."""
        try:
            with self._write():
                self.db.execute(
                    "DELETE FROM acknowledged WHERE user = ? AND at = ?", (user, _ts(at))
                )
        except sqlite3.Error as e:
            raise StateUnavailable(f"{self.path}: {e}") from None
