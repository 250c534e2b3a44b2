"""`audit search` output: a table that fits the terminal, CSV, or the original JSON lines."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from typing import IO

from proxy_addons.investigate import fields as f
from proxy_addons.investigate.read import Entry, write_raw
from proxy_addons.investigate.timeparse import key_to_datetime

FORMATS = ("table", "json", "csv")

CSV_COLUMNS = (
    "@timestamp",
    "local_time",
    "user",
    "action",
    "outcome",
    "reason",
    "domain",
    "site",
    "category",
    "method",
    "path",
    "status_code",
    "exemption_id",
    "ref",
    "source_ip",
    "message",
    "file",
    "line",
)


class LocalTime:
    """UTC keys to local wall-clock text; records come in time order, so cache one minute."""

    def __init__(self, tz: dt.tzinfo) -> None:
        self.tz = tz
        self._minute = ""
        self._base: dt.datetime | None = None

    def at(self, key: str) -> dt.datetime:
        # Every zone's offset is a whole number of minutes: the minute fixes the local minute.
        minute = key[:16]
        if minute != self._minute or self._base is None:
            self._minute = minute
            self._base = key_to_datetime(minute + ":00.000000Z").astimezone(self.tz)
        return self._base.replace(second=int(key[17:19]), microsecond=int(key[20:26]))

    def text(self, key: str) -> str:
        # The zone's abbreviation tells the two 01:30s of an autumn night apart.
        return self.at(key).strftime("%Y-%m-%d %H:%M:%S %Z")


def event_label(record: f.Record) -> str:
    """``allowed`` / ``blocked`` for accesses, the action for other events."""
    return f.outcome(record) or f.action(record) or "?"


def detail(record: f.Record) -> str:
    """What was reached (domain and path) for accesses, the message for other events."""
    if f.is_access(record):
        return (f.domain(record) or f.site(record) or "") + (f.path(record) or "")
    return f.message(record)


def _cell(value: str, width: int) -> str:
    value = value.replace("\n", " ").replace("\t", " ")
    return value.ljust(width) if len(value) <= width else value[: width - 1] + "…"


def table_columns(width: int) -> list[tuple[str, int]]:
    """Column names and widths; the last (DETAIL) takes what is left of ``width``."""
    if width >= 105:
        cols = [("TIME", 24), ("USER", 14), ("EVENT", 14), ("REASON", 18), ("METHOD", 7)]
    else:
        cols = [("TIME", 24), ("USER", 10), ("EVENT", 9), ("REASON", 16)]
    if width >= 125:
        cols.append(("REF", 14))
    used = sum(w + 1 for _, w in cols)
    cols.append(("DETAIL", max(12, width - used)))
    return cols


def write_table(
    out: IO[str], entries: Iterable[Entry], tz: dt.tzinfo, width: int, tz_name: str
) -> int:
    """Stream rows of fixed widths (no second pass, so memory stays flat)."""
    cols = table_columns(width)
    widths = [w for _, w in cols]
    local = LocalTime(tz)
    header = [name for name, _ in cols]
    out.write(" ".join(_cell(h, w) for h, w in zip(header, widths, strict=True)).rstrip() + "\n")
    n = 0
    for e in entries:
        r = e.record
        values = {
            "TIME": local.text(e.key),
            "USER": f.user(r) or (f.NO_USER if f.is_access(r) else "-"),
            "EVENT": event_label(r),
            "REASON": f.reason(r) or "",
            "METHOD": f.method(r) or "",
            "REF": f.ref(r) or "",
            "DETAIL": detail(r),
        }
        out.write(
            " ".join(
                _cell(values[name], w) for (name, _), w in zip(cols, widths, strict=True)
            ).rstrip()
            + "\n"
        )
        n += 1
    return n


def write_json(out: IO[bytes], entries: Iterable[Entry]) -> int:
    n = 0
    for e in entries:
        write_raw(out, e)
        n += 1
    return n


def csv_safe(value: str) -> str:
    """Neutralise text a spreadsheet would run as a formula (paths and names come from users)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_row(e: Entry, local: LocalTime, files: list[str]) -> list[str]:
    r = e.record
    status = f.status_code(r)
    return [
        e.key,
        local.at(e.key).isoformat(),
        csv_safe(f.user(r) or ""),
        f.action(r),
        f.outcome(r) or "",
        csv_safe(f.reason(r) or ""),
        csv_safe(f.domain(r) or ""),
        csv_safe(f.site(r) or ""),
        csv_safe(f.category(r) or ""),
        csv_safe(f.method(r) or ""),
        csv_safe(f.path(r) or ""),
        "" if status is None else str(status),
        csv_safe(f.exemption_id(r) or ""),
        csv_safe(f.ref(r) or ""),
        f.source_ip(r) or "",
        csv_safe(f.message(r)),
        files[e.fileno],
        str(e.line),
    ]


def write_csv(out: IO[str], entries: Iterable[Entry], tz: dt.tzinfo, files: list[str]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    local = LocalTime(tz)
    n = 0
    for e in entries:
        writer.writerow(csv_row(e, local, files))
        n += 1
    return n
