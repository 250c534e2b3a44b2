"""A few fields of canonical audit lines, read without parsing the whole line.

The chain writer spells every record one way (sorted keys, no spaces, UTF-8
kept), so records of one kind share a *layout*: the same keys in the same
order, only the values differ. A layout learnt from a fully parsed line is
turned into a byte pattern that matches exactly the lines that are valid JSON
with those keys, in that order, and values of the types seen so far; its
groups hold the values statistics need. Validity is what makes this safe: a
damaged line never matches, so it still goes through `json` and is reported.

A line with a backslash or a control byte anywhere (escapes, damage) is not
`plain` and is always parsed in full, so a string in a matching line is its
bytes between two quotes. Non-ASCII bytes must be valid UTF-8 (checked as the
full parse would). Anything unusual simply matches no layout and is parsed in
full: the fast path only ever answers when its answer is the full parse's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

# The fields a statistic may need, as paths from the top of the record.
TS, OUTCOME, USER, EXEMPTION, SITE, DOMAIN, CATEGORY, GROUPS = range(8)
PATHS: Final = (
    ("@timestamp",),
    ("socialgate", "outcome"),
    ("user", "name"),
    ("socialgate", "exemption_id"),
    ("socialgate", "site"),
    ("url", "domain"),
    ("socialgate", "category"),
    ("socialgate", "groups"),
)
_FIELD_OF_PATH = {p: i for i, p in enumerate(PATHS)}

MISSING: Final = object()  # the record has no value at that path

# Bytes that send a line to the full parse: control bytes (a line's own "\n"
# aside), the backslash and, for `_ASCII`, every non-ASCII byte.
_NOT_PLAIN = bytes(range(0x20)).replace(b"\n", b"") + b"\\"
_PLAIN = bytes(0x22 if i in _NOT_PLAIN else i for i in range(256))
_ASCII = bytes(0x22 if i in _NOT_PLAIN or i > 0x7F else i for i in range(256))

_STR = rb'"[^"]*+"'  # no escapes: the line is plain
# A JSON number as Python's json reads it; the integer part is kept short of
# int()'s digit limit (a longer one is parsed in full, and rejected there).
_NUM = rb"-?+(?:0|[1-9][0-9]{0,99}+)(?:\.[0-9]++)?+(?:[eE][-+]?+[0-9]++)?+"
_KINDS: Final = {"s": _STR, "n": b"null", "b": b"true|false", "d": _NUM}
# The canonical timestamp, seconds 00-59, so that it is its own sort key.
# Hour, minute and second are in range, so months can be worked out per minute
# (see stats) exactly as `search.LocalTime` would for each record.
_TS = rb'"([0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z)"'

MAX_DEPTH = 12  # nesting a layout may have; a record's is 4
MAX_LAYOUTS = 32  # distinct record layouts kept (a trail has a handful)
MAX_COMPILES = 200  # patterns built per run, widenings included
MAX_IDLE_TRIES = 10_000  # parsed lines that taught nothing before learning stops


def plain(raw: bytes) -> bool:
    """No escape or control byte, and valid UTF-8: what a layout pattern may be tried on."""
    if raw.translate(_ASCII) == raw:
        return True
    if raw.translate(_PLAIN) != raw:
        return False
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "s"
    if value is None:
        return "n"
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int | float):
        return "d"
    return None


def _shallow(value: Any, depth: int = 0) -> bool:
    """Nested no deeper than MAX_DEPTH (checked before anything recurses without limit)."""
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(_shallow(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_shallow(v, depth + 1) for v in value)
    return True


def _alternatives(kinds: set[str]) -> bytes:
    parts = [_KINDS[k] for k in "snbd" if k in kinds]
    return parts[0] if len(parts) == 1 and kinds != {"b"} else b"(?:" + b"|".join(parts) + b")"


class _Node:
    """One value's place in a layout; scalars remember every type seen there."""

    def __init__(self, value: Any) -> None:
        self.kinds: set[str] = set()
        self.keys: tuple[str, ...] = ()
        self.children: list[_Node] = []
        self.form = "scalar"
        if isinstance(value, dict):
            self.form = "object"
            self.keys = tuple(value)
            self.children = [_Node(v) for v in value.values()]
        elif isinstance(value, list):
            if all(_kind(v) is not None for v in value):
                self.form = "list"
                self.kinds = {_kind(v) or "s" for v in value} or {"s"}
            else:
                self.form = "tuple"
                self.children = [_Node(v) for v in value]
        else:
            kind = _kind(value)
            if kind is None:  # not JSON at all: never learnt (see `Layouts.learn`)
                raise ValueError(f"not a JSON value: {type(value).__name__}")
            self.kinds = {kind}

    def widen(self, value: Any) -> bool | None:
        """Take in ``value``'s types: True if widened, False if unchanged, None if shaped apart."""
        if self.form == "object":
            if not isinstance(value, dict) or tuple(value) != self.keys:
                return None
            return self._widen_all(list(value.values()))
        if self.form == "tuple":
            if not isinstance(value, list) or len(value) != len(self.children):
                return None
            return self._widen_all(value)
        if self.form == "list":
            if not isinstance(value, list) or any(_kind(v) is None for v in value):
                return None
            kinds = {_kind(v) or "s" for v in value}
        else:
            kind = _kind(value)
            if kind is None:
                return None
            kinds = {kind}
        if kinds <= self.kinds:
            return False
        self.kinds |= kinds
        return True

    def _widen_all(self, values: list[Any]) -> bool | None:
        changed = False
        for child, v in zip(self.children, values, strict=True):
            r = child.widen(v)
            if r is None:
                return None
            changed = changed or r
        return changed

    def pattern(self, path: tuple[str, ...], captured: set[int]) -> bytes:
        if self.form == "object":
            members = []
            for key, child in zip(self.keys, self.children, strict=True):
                name = json.dumps(key, ensure_ascii=False).encode("utf-8")
                members.append(re.escape(name) + b":" + child.pattern((*path, key), captured))
            body = b"\\{" + b",".join(members) + b"\\}"
        elif self.form == "tuple":
            # Elements are not fields: an unreachable path keeps them uncaptured.
            inner = [c.pattern((*path, "\x00[]"), captured) for c in self.children]
            body = b"\\[" + b",".join(inner) + b"\\]"
        elif self.form == "list":
            item = _alternatives(self.kinds)
            body = b"\\[(?:" + item + b"(?:," + item + b")*+)?+\\]"
        elif path == PATHS[TS] and self.kinds == {"s"}:
            captured.add(TS)
            return _TS  # its group is the first of the pattern: "@" sorts before the rest
        else:
            body = _alternatives(self.kinds)
        field = _FIELD_OF_PATH.get(path)
        if field is None or field == TS:
            return body
        captured.add(field)
        return b"(?P<f%d>" % field + body + b")"


@dataclass
class Layout:
    """A compiled layout: ``m = fullmatch(line)``; ``m.group(1)`` is the timestamp and
    ``m.group(*pick)`` the other wanted fields, in order."""

    root: _Node
    fullmatch: Any  # re.Pattern[bytes].fullmatch
    pick: tuple[int, ...]


def _compile(root: _Node, wanted: Sequence[int]) -> Layout | None:
    captured: set[int] = set()
    body = root.pattern((), captured)
    if TS not in captured:
        return None  # no canonical timestamp: such lines are problems, parsed in full
    # Fields the layout does not have are empty groups: b"" reads as MISSING.
    absent = b"".join(b"(?P<f%d>)" % i for i in wanted if i not in captured and i != TS)
    regex = re.compile(body + b"\n?+" + absent)
    pick = tuple(regex.groupindex[f"f{i}"] for i in wanted if i != TS)
    return Layout(root, regex.fullmatch, pick)


class Layouts:
    """The layouts learnt so far, most recently matched first."""

    def __init__(self, wanted: Sequence[int]) -> None:
        if not wanted or wanted[0] != TS:
            raise ValueError("the timestamp must be the first field wanted")
        self.wanted = tuple(wanted)
        self.layouts: list[Layout] = []
        self.compiles = 0
        self.idle_tries = 0

    def match(self, raw: bytes) -> tuple[bytes, tuple[bytes, ...]] | None:
        """The timestamp and the other wanted fields' raw text, or None: parse in full.

        Only for a `plain` line."""
        for i, layout in enumerate(self.layouts):
            m = layout.fullmatch(raw)
            if m is not None:
                if i:
                    self.layouts.insert(0, self.layouts.pop(i))
                return m.group(1), m.group(*layout.pick)
        return None

    def learn(self, raw: bytes, record: dict[str, Any]) -> None:
        """Learn (or widen) the layout of a fully parsed line, if it is canonical and plain."""
        if self.compiles >= MAX_COMPILES or self.idle_tries >= MAX_IDLE_TRIES:
            return
        self.idle_tries += 1
        if not plain(raw) or not _shallow(record):
            return
        text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if text.encode("utf-8") != raw.removesuffix(b"\n"):
            return
        for i, layout in enumerate(self.layouts):
            widened = layout.root.widen(record)
            if widened is None:
                continue
            if widened:
                self._build(layout.root, raw, replace=i)
            return
        if len(self.layouts) < MAX_LAYOUTS:
            self._build(_Node(record), raw, replace=None)

    def _build(self, root: _Node, raw: bytes, replace: int | None) -> None:
        self.compiles += 1
        layout = _compile(root, self.wanted)
        if layout is None or layout.fullmatch(raw) is None:
            return
        self.idle_tries = 0
        if replace is None:
            self.layouts.insert(0, layout)
        else:
            self.layouts[replace] = layout


def value(text: bytes) -> Any:
    """The JSON value of a field's raw text from a plain line (MISSING for an absent field)."""
    if not text:
        return MISSING
    if text[0] == 0x22:
        return text[1:-1].decode("utf-8")
    if text == b"null":
        return None
    return json.loads(text)


def partial_record(fields: Sequence[int], texts: Sequence[bytes]) -> dict[str, Any]:
    """A record holding only the given fields, for the `fields` module's readers."""
    out: dict[str, Any] = {}
    for field, text in zip(fields, texts, strict=True):
        v = value(text)
        if v is MISSING:
            continue
        path = PATHS[field]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = v
    return out
