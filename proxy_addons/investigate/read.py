"""Streaming reader of audit logs: several files, merged in time order.

Each file (a worker's log, one member of a rotated series) is already in
time order, so the files are merged with `heapq.merge` on the canonical
timestamp and memory stays bounded by one pending record per file.

Damaged lines (not JSON, not an object, no usable ``@timestamp``, a
partially written tail) are reported as ``file:line: message`` and skipped;
the rest of the file is still read.

Lines are read as bytes: `json.loads` takes UTF-8 bytes directly, and the
raw line is what `search --format json` writes back, byte for byte. Lines a
cheap substring test proves cannot match (``Prefilter``) are not parsed, only
checked for framing; that is what keeps a 1M-record search within seconds.
Full validation of every byte is `audit verify`'s job.
"""

from __future__ import annotations

import contextlib
import gzip
import heapq
import json
import pathlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple, cast

from proxy_addons.audit.files import is_compressed
from proxy_addons.errors import AuditError
from proxy_addons.investigate.timeparse import Period, parse_record_time
from proxy_addons.problems import Problem

_TS_NEEDLE = b'"@timestamp":"'
_TS_KEY = b'"@timestamp":'
_PROGRESS_EVERY = 16384  # lines between progress updates


class Entry(NamedTuple):
    """One readable record. Tuple order is merge order: time, then file, then line."""

    key: str  # canonical UTC timestamp
    fileno: int
    line: int
    raw: bytes
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Prefilter:
    """Byte strings a matching line must contain: one of each group.

    Only ever a necessary condition, never a sufficient one: every line that
    passes is still parsed and checked against the real filters.
    """

    groups: tuple[tuple[bytes, ...], ...] = ()

    def rejects(self, raw: bytes) -> bool:
        for group in self.groups:
            for needle in group:
                if needle in raw:
                    break
            else:
                return True
        return False


class Progress:
    """Receives bytes read so far; the CLI draws it, tests ignore it."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0

    def advance(self, delta: int) -> None:
        self.done += delta

    def close(self) -> None:
        pass


def unique_paths(paths: Iterable[pathlib.Path]) -> list[pathlib.Path]:
    """The paths in order, each file once (a file named twice would double its records)."""
    seen: set[pathlib.Path] = set()
    out: list[pathlib.Path] = []
    for p in paths:
        real = p.resolve()
        if real not in seen:
            seen.add(real)
            out.append(p)
    return out


def framed(raw: bytes) -> bool:
    """Looks like one whole record: braces at both ends, a single timestamp key."""
    body = raw.rstrip(b"\r\n")
    return body[:1] == b"{" and body[-1:] == b"}" and body.count(_TS_KEY) == 1


def outside_by_text(raw: bytes, since: str | None, until: str | None) -> bool:
    """The cheap time test on the raw text: True only for a canonical timestamp outside
    [since, until). Anything else is left to the parsed value."""
    i = raw.find(_TS_NEEDLE)
    k = raw[i + 14 : i + 41].decode("ascii", "replace") if i != -1 else ""
    canonical = raw[i + 41 : i + 42] == b'"' and k[10:11] == "T" and k[26:] == "Z"
    return canonical and ((since is not None and k < since) or (until is not None and k >= until))


def open_log(path: pathlib.Path) -> tuple[IO[bytes], IO[bytes]]:
    """(the line stream, the underlying file whose offset measures progress).

    A 1 MB buffer: an 8 kB one costs a system call every 6 lines.
    """
    try:
        raw = path.open("rb", buffering=1 << 20)
    except OSError as e:
        raise AuditError(f"{path}: cannot read audit log: {e.strerror or e}") from None
    if is_compressed(path):
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")), raw
    return raw, raw


# str in, not bytes: json.loads(bytes) spends a fifth of its time guessing the encoding.
_decode = json.JSONDecoder().decode


@dataclass
class LogReader:
    """Reads and merges the given logs; collects every problem met on the way."""

    paths: Sequence[pathlib.Path]
    period: Period = field(default_factory=Period)
    prefilter: Prefilter = field(default_factory=Prefilter)
    on_problem: Callable[[Problem], None] | None = None
    progress_factory: Callable[[int], Progress] | None = None
    problems: list[Problem] = field(default_factory=list)
    lines_read: int = 0
    _unordered: set[int] = field(default_factory=set, init=False, repr=False)  # files reported

    def __post_init__(self) -> None:
        self.paths = unique_paths(self.paths)
        self.names = [str(p) for p in self.paths]

    def _problem(self, fileno: int, line: int, message: str) -> None:
        p = Problem(self.names[fileno], line, message)
        self.problems.append(p)
        if self.on_problem is not None:
            self.on_problem(p)

    def __iter__(self) -> Iterator[Entry]:
        """The matching records of every file, in time order."""
        return self.merged(self._read)

    def merged[T: (Entry, str)](
        self, read: Callable[[int, Iterator[bytes]], Iterator[T]]
    ) -> Iterator[T]:
        """Every file read by ``read(fileno, its lines)``, merged in order; files closed after.

        What ``read`` yields merges as entries do: by time, ties to the earlier file.
        """
        for p in self.paths:
            if p.is_dir():
                raise AuditError(f"{p}: is a directory, not an audit log")
        self._unordered.clear()  # a new pass reports its own order problems
        opened = [open_log(p) for p in self.paths]
        total = sum(pathlib.Path(p).stat().st_size for p in self.paths)
        progress = self.progress_factory(total) if self.progress_factory else None
        try:
            streams = [
                read(i, self._lines(i, stream, under, progress))
                for i, (stream, under) in enumerate(opened)
            ]
            yield from streams[0] if len(streams) == 1 else heapq.merge(*streams)
        finally:
            for stream, under in opened:
                stream.close()
                under.close()
            if progress is not None:
                progress.close()

    def _lines(
        self, fileno: int, stream: IO[bytes], under: IO[bytes], progress: Progress | None
    ) -> Iterator[bytes]:
        """The lines of one file, counted into ``lines_read``; a read error ends them."""
        offset = 0
        lineno = 0
        lines: Iterator[bytes] = iter(stream)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                break
            except (OSError, EOFError, gzip.BadGzipFile) as e:
                self._problem(fileno, lineno + 1, f"cannot read further: {e}; rest of file skipped")
                break
            lineno += 1
            if progress is not None and lineno % _PROGRESS_EVERY == 0:
                pos = under.tell()
                progress.advance(pos - offset)
                offset = pos
            yield raw
        self.lines_read += lineno
        if progress is not None:
            with contextlib.suppress(OSError, ValueError):
                progress.advance(under.tell() - offset)

    def parse(self, fileno: int, lineno: int, raw: bytes) -> tuple[dict[str, Any], str] | None:
        """(record, canonical time key) of a line, or None with its problem reported."""
        try:
            record = _decode(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            self.damaged(fileno, lineno, raw)
            return None
        if not isinstance(record, dict):
            self._problem(fileno, lineno, "not a JSON object")
            return None
        key = parse_record_time(record.get("@timestamp"))
        if key is None:
            self._problem(fileno, lineno, "no valid @timestamp")
            return None
        return record, key

    def out_of_order(self, fileno: int, lineno: int, key: str, last_key: str) -> None:
        """Report a timestamp earlier than the line before: the first one of each file."""
        if fileno in self._unordered:
            return
        self._unordered.add(fileno)
        self._problem(
            fileno,
            lineno,
            f"timestamp {key} is earlier than the line before ({last_key}); "
            "the merged order around here may be off",
        )

    def _read(self, fileno: int, lines: Iterator[bytes]) -> Iterator[Entry]:
        since = self.period.since_key
        until = self.period.until_key
        timed = since is not None or until is not None
        rejects = self.prefilter.rejects if self.prefilter.groups else None
        last_key = ""
        for lineno, raw in enumerate(lines, 1):
            if (rejects is not None and rejects(raw)) or (
                # Cheap time test on the raw text; the parsed value decides below.
                timed and outside_by_text(raw, since, until)
            ):
                if not framed(raw):
                    self.damaged(fileno, lineno, raw)
                continue
            parsed = self.parse(fileno, lineno, raw)
            if parsed is None:
                continue
            record, key = parsed
            if key < last_key:
                self.out_of_order(fileno, lineno, key, last_key)
            last_key = max(key, last_key)
            if (since is not None and key < since) or (until is not None and key >= until):
                continue
            yield Entry(key, fileno, lineno, raw, record)

    def damaged(self, fileno: int, lineno: int, raw: bytes) -> None:
        """Report a line that is not a record, saying as well as it can what is wrong."""
        body = raw.rstrip(b"\r\n")
        if not body.strip():
            why = "empty line"
        elif not raw.endswith(b"\n"):
            why = "partially written record (no end of line)"
        elif body.count(_TS_KEY) > 1:
            why = "two records run together (a partial write followed by a new record)"
        else:
            try:
                value = json.loads(raw)
                why = "unexpected record layout" if isinstance(value, dict) else "not a JSON object"
            except (ValueError, RecursionError) as e:
                why = f"not valid JSON ({_short(e)})"
        self._problem(fileno, lineno, why)


def _short(e: BaseException) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} at column {e.colno}"
    if isinstance(e, UnicodeDecodeError):
        return f"bytes that are not UTF-8 at column {e.start + 1}"
    return type(e).__name__


def write_raw(out: IO[bytes], entry: Entry) -> None:
    """The original line, byte for byte (a final line without newline gets one)."""
    out.write(entry.raw if entry.raw.endswith(b"\n") else entry.raw + b"\n")
