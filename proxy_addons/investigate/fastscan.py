"""`LogReader`'s pass over the logs, for counting: fields instead of whole records.

`audit stats` needs a handful of fields from every line. This is the same
reading, line for line, as `LogReader.__iter__` (same files, same problems at
the same lines and in the same order, same period and order checks, same
merge), but a line that matches a learnt layout (`fastfields`) is not parsed:
its fields' raw text is counted in ``counts``. Every other line is parsed as
the reader parses it and handed to ``parsed`` (and may teach a layout).

Counting the raw text of distinct field combinations, not records, is what
keeps the per-line cost down; ``flush`` empties ``counts`` when it grows, so
memory stays bounded whatever the trail holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from proxy_addons.investigate.fastfields import _ASCII, Layouts, plain
from proxy_addons.investigate.read import LogReader, framed, outside_by_text

FLUSH_AT = 50_000  # distinct field combinations held before `flush`

# The raw text of the two access outcomes in a plain line.
ACCESS_TEXTS = frozenset((b'"allowed"', b'"blocked"'))


@dataclass
class Counter:
    """Where the scan puts what it read; see the module docstring."""

    layouts: Layouts
    counts: dict[tuple[Any, ...], int]
    parsed: Callable[[dict[str, Any], str], None]
    flush: Callable[[], None]
    # For a fast line of an access outcome: a label (the month) counted with its fields;
    # it must depend on the key's minute (its first 16 characters) only.
    label: Callable[[str], str] | None = None


def scan(reader: LogReader, counter: Counter) -> None:
    """Read every log of ``reader`` into ``counter``; problems go to ``reader`` as usual."""
    if reader.prefilter.groups:
        raise ValueError("scan reads every line: give the reader no prefilter")
    merge = len(reader.paths) > 1
    # The merge only fixes the order problems are reported in: the same as the reader's,
    # because keys merge as entries do (ties go to the earlier file, then the earlier line).
    for _ in reader.merged(lambda fileno, lines: _read(reader, counter, fileno, lines, merge)):
        pass
    counter.flush()


def _read(
    reader: LogReader,
    counter: Counter,
    fileno: int,
    lines: Iterator[bytes],
    merge: bool,
) -> Iterator[str]:
    """`LogReader._read`, yielding keys only when merging; see the module docstring."""
    since = reader.period.since_key
    until = reader.period.until_key
    timed = since is not None or until is not None
    layouts = counter.layouts
    match = layouts.match
    first, pick = _first(layouts)
    learn = layouts.learn
    counts = counter.counts
    parsed = counter.parsed
    label = counter.label
    ascii_table = _ASCII
    access = ACCESS_TEXTS
    last_key = ""
    fields: tuple[bytes, ...] = ()
    label_lo = label_hi = label_text = ""
    for lineno, raw in enumerate(lines, 1):
        if timed and outside_by_text(raw, since, until):  # exactly as the reader does it
            if not framed(raw):
                reader.damaged(fileno, lineno, raw)
            continue
        # The layout that matched last, tried inline: this is the path almost every line takes.
        m = first(raw) if first is not None and raw.translate(ascii_table) == raw else None
        if m is not None:
            key = m.group(1).decode("ascii")
            fields = m.group(*pick)
            record = None
        else:
            hit = match(raw) if plain(raw) else None
            first, pick = _first(layouts)
            if hit is not None:
                key = hit[0].decode("ascii")
                fields = hit[1]
                record = None
            else:
                found = reader.parse(fileno, lineno, raw)
                if found is None:
                    continue
                record, key = found
        if key < last_key:
            reader.out_of_order(fileno, lineno, key, last_key)
        if key > last_key:
            last_key = key
        if timed and ((since is not None and key < since) or (until is not None and key >= until)):
            continue
        if record is not None:
            parsed(record, key)
            learn(raw, record)
            first, pick = _first(layouts)
        else:
            seen: tuple[Any, ...] = fields
            if label is not None and fields[0] in access:
                # A label is a function of the minute; keys of one minute sort between
                # its 16-character prefix and the prefix followed by "\x7f".
                if not label_lo <= key < label_hi:
                    label_lo = key[:16]
                    label_hi = label_lo + "\x7f"
                    label_text = label(key)
                seen = (fields, label_text)
            counts[seen] = counts.get(seen, 0) + 1
            if len(counts) >= FLUSH_AT:
                counter.flush()
        if merge:
            yield key


def _first(
    layouts: Layouts,
) -> tuple[Callable[[bytes], re.Match[bytes] | None] | None, tuple[int, ...]]:
    if not layouts.layouts:
        return None, ()
    return layouts.layouts[0].fullmatch, layouts.layouts[0].pick
