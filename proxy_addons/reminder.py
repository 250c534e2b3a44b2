"""The code-of-conduct reminder exempt staff acknowledge every ``reminder.every``.

Acknowledgements live in memory (a restart shows the reminder again, which
errs on the side of reminding), or, with ``socialgate_shared_state``, in a file
every worker of the host shares (`proxy_addons.shared_state`, the same methods:
`ReminderState`). The acknowledge link carries a single-use,
unguessable nonce bound to the user, so a social site cannot acknowledge on
someone's behalf by embedding the link.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, unquote

ACK_PREFIX = "/__socialgate/acknowledge/"
NONCE_TTL = dt.timedelta(hours=1)
MAX_PENDING = 100_000


@dataclass(frozen=True, slots=True)
class Pending:
    user: str
    issued: dt.datetime
    ref: str  # event.id of the reminder-shown record


def new_nonce() -> str:
    """An unguessable acknowledge nonce (URL-safe)."""
    return secrets.token_urlsafe(24)


class ReminderState(Protocol):
    """Who acknowledged when, and the nonces of reminders shown (memory or shared file)."""

    def due(self, user: str, every: dt.timedelta, now: dt.datetime) -> bool: ...
    def issue(self, user: str, ref: str, now: dt.datetime) -> str: ...
    def acknowledge(self, user: str, nonce: str, now: dt.datetime) -> Pending | None: ...
    def withdraw(self, user: str, at: dt.datetime) -> None: ...
    def close(self) -> None: ...


class Reminders:
    """`ReminderState` in this process's memory."""

    def __init__(self) -> None:
        self.acknowledged: dict[str, dt.datetime] = {}
        self.pending: dict[str, Pending] = {}

    def due(self, user: str, every: dt.timedelta, now: dt.datetime) -> bool:
        last = self.acknowledged.get(user)
        return last is None or now - last >= every

    def issue(self, user: str, ref: str, now: dt.datetime) -> str:
        if len(self.pending) >= MAX_PENDING:
            self._expire(now)
            if len(self.pending) >= MAX_PENDING:
                self.pending.clear()
        nonce = new_nonce()
        self.pending[nonce] = Pending(user, now, ref)
        return nonce

    def acknowledge(self, user: str, nonce: str, now: dt.datetime) -> Pending | None:
        """The pending reminder this nonce answers, if it is the user's and fresh."""
        p = self.pending.get(nonce)
        if p is None or p.user != user or now - p.issued > NONCE_TTL:
            return None
        del self.pending[nonce]
        self.acknowledged[user] = now
        return p

    def withdraw(self, user: str, at: dt.datetime) -> None:
        """Undo the acknowledgement made at ``at`` (its record could not be written)."""
        if self.acknowledged.get(user) == at:
            del self.acknowledged[user]

    def close(self) -> None:
        pass

    def _expire(self, now: dt.datetime) -> None:
        for nonce, p in list(self.pending.items()):
            if now - p.issued > NONCE_TTL:
                del self.pending[nonce]


def safe_next(path: str) -> str:
    """Only a path on the same site: never an open redirect."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def is_navigation(method: str, accept: str, fetch_dest: str | None) -> bool:
    """A top-level page load, where showing a page instead makes sense."""
    if method.upper() != "GET" or "text/html" not in accept:
        return False
    return fetch_dest in (None, "", "document")


def ack_url(nonce: str, path: str) -> str:
    """The acknowledge link on the reminder page; it leads back to ``path`` afterwards."""
    return f"{ACK_PREFIX}{nonce}?next={quote(safe_next(path), safe='')}"


def ack_nonce(path: str) -> str:
    """The nonce in an acknowledge link's path (``path`` starts with `ACK_PREFIX`)."""
    return path[len(ACK_PREFIX) :].split("?", 1)[0]


def ack_target(next_param: str) -> str:
    """Where the browser goes after acknowledging: the page it was going to, on this site."""
    return safe_next(unquote(next_param))
