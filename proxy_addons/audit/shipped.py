"""Finding the checkpoints in a shipped copy: syslog files, journal exports.

What a collector writes around a checkpoint depends on its configuration: rsyslog's
traditional file format (``Nov 25 10:00:00 proxy1 socialgate[812]: {...}``), its RFC 5424
output (``<37>1 2026-11-25T10:00:00.1Z proxy1 socialgate 812 checkpoint - {...}``),
``journalctl -o short-iso`` or ``-o cat``, or ``journalctl -o json`` (the checkpoint as the
string ``MESSAGE`` of a JSON object). Rather than parse each header, `checkpoint_in` looks
for the JSON object in the line that has the fields of a checkpoint: the header is not
evidence (anyone can send a syslog message), the signature inside it is.
"""

from __future__ import annotations

import json
from typing import Any

CHECKPOINT_FIELDS = ("worker", "n", "seq", "hash", "signature")
_MAX_TRIES = 8  # JSON objects tried per line: a header holds few braces
_DECODER = json.JSONDecoder()


def looks_like_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and all(k in obj for k in CHECKPOINT_FIELDS)


def checkpoint_in(line: str, *, depth: int = 0) -> dict[str, Any] | None:
    """The checkpoint a syslog or journal line carries, or None."""
    start = line.find("{")
    tries = 0
    while start != -1 and tries < _MAX_TRIES:
        tries += 1
        try:
            obj, _ = _DECODER.raw_decode(line, start)
        except ValueError:
            start = line.find("{", start + 1)
            continue
        if looks_like_checkpoint(obj):
            return dict(obj)
        message = obj.get("MESSAGE") if isinstance(obj, dict) else None
        if isinstance(message, str) and depth == 0:  # journalctl -o json
            return checkpoint_in(message, depth=1)
        start = line.find("{", start + 1)
    return None
