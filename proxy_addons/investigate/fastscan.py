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

import contextlib
import gzip
import heapq
import json
import pathlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from proxy_addons.errors import AuditError
from proxy_addons.investigate.fastfields import _ASCII, Layouts, plain
from proxy_addons.investigate.read import (
    _PROGRESS_EVERY,
    _TS_NEEDLE,
    LogReader,
    Progress,
    _framed,
)
from proxy_addons.investigate.timeparse import parse_record_time

_BUFFER = 1 << 20
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
    for p in reader.paths:
        if p.is_dir():
            raise AuditError(f"{p}: is a directory, not an audit log")
    opened = [_open(p) for p in reader.paths]
    total = sum(pathlib.Path(p).stat().st_size for p in reader.paths)
    progress = reader.progress_factory(total) if reader.progress_factory else None
    merge = len(opened) > 1
    try:
        streams = [
            _read(reader, counter, i, stream, under, progress, merge)
            for i, (stream, under) in enumerate(opened)
        ]
        # The merge only fixes the order problems are reported in: the same as the reader's,
        # because keys merge as entries do (ties go to the earlier file, then the earlier line).
        for _ in streams[0] if len(streams) == 1 else heapq.merge(*streams):
            pass
        counter.flush()
    finally:
        for stream, under in opened:
            stream.close()
            under.close()
        if progress is not None:
            progress.close()


def _read(
    reader: LogReader,
    counter: Counter,
    fileno: int,
    stream: IO[bytes],
    under: IO[bytes],
    progress: Progress | None,
    merge: bool,
) -> Iterator[str]:
    """`LogReader._read`, yielding keys only when merging; see the module docstring."""
    since = reader.period.since_key
    until = reader.period.until_key
    timed = since is not None or until is not None
    decode = json.JSONDecoder().decode
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
    reported_order = False
    offset = 0
    lineno = 0
    lines: Iterator[bytes] = iter(stream)
    fields: tuple[bytes, ...] = ()
    label_lo = label_hi = label_text = ""
    while True:
        try:
            raw = next(lines)
        except StopIteration:
            break
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            reader._problem(fileno, lineno + 1, f"cannot read further: {e}; rest of file skipped")
            break
        lineno += 1
        if progress is not None and lineno % _PROGRESS_EVERY == 0:
            pos = under.tell()
            progress.advance(pos - offset)
            offset = pos
        if timed:
            # Cheap time test on the raw text, exactly as the reader does it.
            i = raw.find(_TS_NEEDLE)
            k = raw[i + 14 : i + 41].decode("ascii", "replace") if i != -1 else ""
            canonical = raw[i + 41 : i + 42] == b'"' and k[10:11] == "T" and k[26:] == "Z"
            if canonical and (
                (since is not None and k < since) or (until is not None and k >= until)
            ):
                if not _framed(raw):
                    reader._damaged(fileno, lineno, raw)
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
                try:
                    value = decode(raw.decode("utf-8"))
                except (ValueError, RecursionError):
                    reader._damaged(fileno, lineno, raw)
                    continue
                if not isinstance(value, dict):
                    reader._problem(fileno, lineno, "not a JSON object")
                    continue
                record = value
                found = parse_record_time(record.get("@timestamp"))
                if found is None:
                    reader._problem(fileno, lineno, "no valid @timestamp")
                    continue
                key = found
        if key < last_key and not reported_order:
            reported_order = True
            reader._problem(
                fileno,
                lineno,
                f"timestamp {key} is earlier than the line before ({last_key}); "
                "the merged order around here may be off",
            )
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
    reader.lines_read += lineno
    if progress is not None:
        with contextlib.suppress(OSError, ValueError):
            progress.advance(under.tell() - offset)


def _first(
    layouts: Layouts,
) -> tuple[Callable[[bytes], re.Match[bytes] | None] | None, tuple[int, ...]]:
    if not layouts.layouts:
        return None, ()
    return layouts.layouts[0].fullmatch, layouts.layouts[0].pick


def _open(path: pathlib.Path) -> tuple[IO[bytes], IO[bytes]]:
    """`LogReader._open` with a larger buffer: an 8 kB one costs a system call every 6 lines."""
    try:
        raw = path.open("rb", buffering=_BUFFER)
    except OSError as e:
        raise AuditError(f"{path}: cannot read audit log: {e.strerror or e}") from None
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")), raw
    return raw, raw
