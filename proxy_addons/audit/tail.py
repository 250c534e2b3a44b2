"""The tail of an existing log: where its chain stands, read before continuing it.

The writer (at start, and after an incident) and the admin CLI's `append`
both continue a chain from the last record of a file; that record must
verify under the audit key, or the file is refused. An incomplete last line
(a crash mid-write) is returned as ``torn``: it is kept as evidence, and the
next record starts a new segment that says so (`Tail.torn_break`).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxy_addons.audit.chain import GENESIS, chain_of, parse_line, record_hmac
from proxy_addons.audit.record import Record
from proxy_addons.errors import AuditError

# Says whether the last record verifies (forward-secure sealing: under the epoch's key).
TailCheck = Callable[[Record, dict[str, Any]], bool]

_TAIL_BYTES = 1 << 20  # a record is ~1 KB; the last complete one is within this


@dataclass(frozen=True, slots=True)
class Tail:
    """What a log file ends with, as found at start."""

    worker: str | None
    seq: int
    hash: str
    action: str | None  # event.action of the last record
    torn: bytes  # an incomplete last line (crash mid-write), else b""
    epoch: int | None = None  # chain.epoch of the last record (None: format 1)
    stopped: bool = False  # the writer stopped cleanly (its last records say so)

    def torn_break(self) -> dict[str, Any]:
        """The ``chain.break`` of the record written after a torn last line."""
        return {
            "reason": "torn-tail",
            "torn_bytes": len(self.torn),
            "torn_sha256": hashlib.sha256(self.torn).hexdigest(),
        }


def read_tail(path: pathlib.Path, key: bytes | TailCheck) -> Tail:
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
    ok = key(record, chain) if callable(key) else record_hmac(key, record) == chain["hash"]
    if not ok:
        raise AuditError(
            f"audit log {path}: this log was sealed with another key (its last record does "
            "not verify under the audit key given): give the key it was written with "
            "(socialgate_audit_key), or move the log aside to start a new one; if no key "
            "you hold verifies it, the log was altered"
        )
    action = record.get("event", {}).get("action")
    ns = record.get("socialgate")
    sealed = ns.get("epoch") if isinstance(ns, dict) else None
    stopped = action == "audit-stopped" or (
        action == "epoch-sealed" and isinstance(sealed, dict) and sealed.get("reason") == "shutdown"
    )
    return Tail(
        chain["worker"], chain["seq"], chain["hash"], action, torn, chain.get("epoch"), stopped
    )
