"""The evidence pipeline: how a built record becomes one line of the audit trail.

A dedicated structlog pipeline, built per writer (never structlog's global
configuration), so audit records cannot end up in mitmproxy's log nor
operations messages in the audit trail:

* ``@timestamp`` in UTC ISO-8601 (kept if the record has one, as `record.py` sets it);
* structlog's positional ``event`` becomes ``message`` (ECS ``event`` is passed as ``_event``);
* exceptions rendered as data without local variables (they may hold passwords);
* then the seal: the chain fields, the HMAC and the strict canonical JSON in one
  pass (`chain.sealed_line`): sorted keys, no whitespace, and an unknown type is
  an error, never a ``repr``.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any, Protocol

import structlog
from structlog.typing import Processor

from proxy_addons.audit.chain import sealed_line
from proxy_addons.audit.record import Record


class AuditSink(Protocol):
    """What the gate needs from the audit trail."""

    async def submit(self, record: Record) -> None:
        """Write the record; return only once it is as durable as configured.

        Raises `AuditUnavailable` if it could not be written: the caller must
        then refuse the access the record describes.
        """

    def submit_nowait(self, record: Record) -> None:
        """Queue the record without waiting (blocked attempts, lifecycle events)."""


def rename_event_to_message() -> Processor:
    """structlog's ``event`` becomes ``message``; ECS ``event`` is passed as ``_event``."""
    return structlog.processors.EventRenamer(to="message", replace_by="_event")


def utc_timestamp() -> Processor:
    stamper = structlog.processors.TimeStamper(fmt="iso", utc=True, key="@timestamp")

    def add_if_missing(
        logger: Any, name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if "@timestamp" in event_dict:
            return event_dict
        return stamper(logger, name, event_dict)

    return add_if_missing


def exceptions_without_locals() -> Processor:
    return structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False, use_rich=False)
    )


def evidence_processors() -> list[Processor]:
    """The audit pipeline before sealing: timestamp, rename, exceptions without locals."""
    return [utc_timestamp(), rename_event_to_message(), exceptions_without_locals()]


def emit(logger: Any, record: Record) -> Any:
    """Send a built record through a structlog logger of the evidence pipeline.

    Returns what the logger returns (the rendered line, for a ``ReturnLogger``).
    """
    fields: MutableMapping[str, Any] = dict(record)
    message = fields.pop("message")
    event = fields.pop("event")
    return logger.info(message, _event=event, **fields)


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


class Renderer:
    """Seals a record into the chain and renders its line (not thread-safe: one per writer)."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._pending: dict[str, Any] = {}
        self._hash = ""
        # The last processor seals and serialises in one pass (see `chain.sealed_line`),
        # so the strict canonical JSON is produced once per record.
        self._logger = structlog.wrap_logger(
            structlog.ReturnLogger(),
            processors=[*evidence_processors(), self._seal_and_render],
        )

    def _seal_and_render(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> str:
        ns = dict(event_dict.get("socialgate") or {})
        ns["chain"] = dict(self._pending)
        event_dict["socialgate"] = ns
        line, self._hash = sealed_line(self._key, dict(event_dict))
        return line

    def render(
        self, record: Record, worker: str, seq: int, prev: str, brk: dict[str, Any] | None = None
    ) -> tuple[bytes, str]:
        """The line (with its newline) of ``record`` as ``seq`` of ``worker``, and its hash.

        Raises ``ValueError`` / ``TypeError`` for a record that cannot be evidence.
        """
        self._pending = {"worker": worker, "seq": seq, "prev": prev}
        if brk is not None:
            self._pending["break"] = brk
        line: str = emit(self._logger, record)
        forbid_secrets(line)  # on the final text: one pass, any depth
        return (line + "\n").encode("utf-8"), self._hash
