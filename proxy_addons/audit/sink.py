"""Where audit records go: JSON lines through a dedicated structlog pipeline.

The pipeline is built per sink (never structlog's global configuration), so
audit records cannot end up in mitmproxy's log nor operations messages in the
audit trail.
"""

from __future__ import annotations

import json
import pathlib
import threading
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any, Protocol, TextIO

import structlog
from structlog.typing import Processor

from proxy_addons.audit.record import Record
from proxy_addons.errors import AuditUnavailable


class AuditSink(Protocol):
    """What the gate needs from the audit trail."""

    async def submit(self, record: Record) -> None:
        """Write the record; return only once it is as durable as configured.

        Raises `AuditUnavailable` if it could not be written: the caller must
        then refuse the access the record describes.
        """

    def submit_nowait(self, record: Record) -> None:
        """Queue the record without waiting (blocked attempts, lifecycle events)."""

    def close(self) -> None:
        """Flush and close; later submissions raise `AuditUnavailable`."""


def strict_dumps(obj: Any, **_: Any) -> str:
    """JSON with no fallback: an unknown type is an error, never a ``repr``."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def rename_event_to_message() -> Processor:
    """structlog's positional ``event`` becomes ``message``; ECS ``event`` travels as ``_event``."""
    return structlog.processors.EventRenamer(to="message", replace_by="_event")


def evidence_processors(extra: Sequence[Processor] = ()) -> list[Processor]:
    """The audit pipeline: rename, then any chain processors, then strict JSON."""
    return [
        rename_event_to_message(),
        *extra,
        structlog.processors.JSONRenderer(serializer=strict_dumps),
    ]


def emit(logger: Any, record: Record) -> None:
    """Send a built record through a structlog logger of the evidence pipeline."""
    fields: MutableMapping[str, Any] = dict(record)
    message = fields.pop("message")
    event = fields.pop("event")
    logger.info(message, _event=event, **fields)


class _LineWriter:
    """structlog logger that appends one line per record and flushes it."""

    def __init__(self, fh: TextIO) -> None:
        self._fh = fh
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            self._fh.write(message + "\n")
            self._fh.flush()

    info = msg


class JsonLinesSink:
    """First-cut sink: synchronous append of one JSON line per record."""

    def __init__(self, path: str | pathlib.Path, extra: Sequence[Processor] = ()) -> None:
        self.path = pathlib.Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: TextIO | None = self.path.open("a", encoding="utf-8")
        except OSError as e:
            raise AuditUnavailable(f"cannot open audit log {self.path}: {e.strerror}") from e
        self._logger = structlog.wrap_logger(
            _LineWriter(self._fh),
            processors=evidence_processors(extra),
            cache_logger_on_first_use=True,
        )

    def _write(self, record: Record) -> None:
        if self._fh is None:
            raise AuditUnavailable(f"audit log {self.path} is closed")
        try:
            emit(self._logger, record)
        except (OSError, ValueError) as e:
            raise AuditUnavailable(f"cannot write audit log {self.path}: {e}") from e

    async def submit(self, record: Record) -> None:
        self._write(record)

    def submit_nowait(self, record: Record) -> None:
        self._write(record)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


SinkFactory = Callable[[pathlib.Path], AuditSink]
