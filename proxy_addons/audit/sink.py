"""The evidence pipeline: how a built record becomes one line of the audit trail.

It is a function, not a logging pipeline: `record.py` builds every record
whole (``@timestamp`` in UTC, ``message``, the ECS ``event``; no exceptions,
no free-form fields), so all that is left is to seal and render it:

* the chain fields and the HMAC, and the strict canonical JSON, in one pass
  (`chain.sealed_line`): sorted keys, no whitespace, and an unknown type or a
  NaN is an error, never a ``repr``;
* then a last guard on the final text: no field named like a credential,
  cookie, header or body, at any depth (`forbid_secrets`).

No logging framework is involved. A structlog processor chain used to run
first (stamping a missing ``@timestamp``, renaming structlog's ``event``,
rendering exceptions) and changed nothing in the records `record.py` builds;
without it, audit records cannot reach mitmproxy's log nor operations
messages the trail, and the lines are byte for byte what they were.
"""

from __future__ import annotations

import re
from typing import Any

from proxy_addons.audit.chain import CHAIN_KEY, NAMESPACE, mac_of, sealed_line
from proxy_addons.audit.record import Record

_FORBIDDEN_KEYS = (
    "password", "passwd", "authorization", "proxy-authorization", "proxy_authorization",
    "cookie", "cookies", "set-cookie", "headers", "body",
)  # fmt: skip
# In compact JSON every key follows "{" or ","; inside string values quotes are escaped,
# so this finds forbidden keys at any depth and never text inside a value.
_FORBIDDEN_KEY = re.compile(
    r'[{,]"(' + "|".join(re.escape(k) for k in _FORBIDDEN_KEYS) + r')":', re.IGNORECASE
)
# A quote inside a JSON string is escaped, so '"key":' with bare quotes is a key; a
# plain substring test on the lower-cased line finds what the regex finds, 5x faster.
_FORBIDDEN_NEEDLES = tuple(f'"{k}":' for k in _FORBIDDEN_KEYS)


def forbid_secrets(line: str) -> None:
    """Last line of defence: credentials, cookies, headers and bodies have no field here."""
    lowered = line.lower()
    if any(needle in lowered for needle in _FORBIDDEN_NEEDLES):
        m = _FORBIDDEN_KEY.search(line)
        name = m.group(1) if m else next(n for n in _FORBIDDEN_NEEDLES if n in lowered)[1:-2]
        raise ValueError(f"field {name!r} may not appear in the audit trail")


_REQUIRED = ("message", "event")  # what happened, in words and in ECS terms


class Renderer:
    """Seals records into a chain and renders their lines.

    Under one key for ever (format 1, ``epoch`` None), or under the key of the current
    epoch (format 2, forward-secure sealing: `rekey` at each epoch step).
    """

    def __init__(self, key: bytes, epoch: int | None = None) -> None:
        self._mac = mac_of(key)
        self.epoch = epoch

    def rekey(self, key: bytes, epoch: int) -> None:
        """Seal from now on under ``key`` as epoch ``epoch`` (the old HMAC object is dropped)."""
        self._mac, self.epoch = mac_of(key), epoch

    def render(
        self, record: Record, worker: str, seq: int, prev: str, brk: dict[str, Any] | None = None
    ) -> tuple[bytes, str]:
        """The line (with its newline) of ``record`` as ``seq`` of ``worker``, and its hash.

        Raises ``ValueError`` / ``TypeError`` for a record that cannot be evidence,
        ``KeyError`` for one without ``message`` or ``event``.
        """
        chain: dict[str, Any] = {"worker": worker, "seq": seq, "prev": prev}
        if self.epoch is not None:
            chain["epoch"] = self.epoch
        if brk is not None:
            chain["break"] = brk
        for name in _REQUIRED:
            if name not in record:
                raise KeyError(name)
        sealed = {**record, NAMESPACE: {**(record.get(NAMESPACE) or {}), CHAIN_KEY: chain}}
        line, hash_ = sealed_line(self._mac, sealed)
        forbid_secrets(line)  # on the final text: one pass, any depth
        return (line + "\n").encode("utf-8"), hash_
