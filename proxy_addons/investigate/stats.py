"""`audit stats`: aggregate counts for management and freedom-of-information answers.

One access record counts once: a blocked attempt or an allowed request.
Other events (policy loaded, exemption granted …) are not counted. A user
counts as holding an exemption if the policy gives them one valid at some
time in the period, or if the trail shows an access allowed under one.

Small counts can be suppressed (``suppress_below``): counts from 1 to N-1
are withheld so that published figures cannot single out a person.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from proxy_addons.investigate import fastfields as ff
from proxy_addons.investigate import fields as f
from proxy_addons.investigate.fastscan import Counter, scan
from proxy_addons.investigate.people import groups_of, holders
from proxy_addons.investigate.read import Entry, LogReader
from proxy_addons.investigate.search import LocalTime
from proxy_addons.investigate.timeparse import Period, key_to_datetime
from proxy_addons.policy.model import Policy

BY = ("user", "group", "site", "category", "month", "outcome")
COLUMNS = ("blocked_attempts", "allowed_requests", "distinct_users", "users_with_exemption")
TOTAL = "(total)"


@dataclass
class Bucket:
    blocked: int = 0
    allowed: int = 0
    users: set[str] = field(default_factory=set)


@dataclass
class Stats:
    by: str | None
    rows: dict[str, Bucket]
    total: Bucket
    exemption_holders: set[str]  # policy holders plus users seen allowed
    policy_holders: int
    other_events: int

    def values(self, b: Bucket) -> dict[str, int]:
        return {
            "blocked_attempts": b.blocked,
            "allowed_requests": b.allowed,
            "distinct_users": len(b.users),
            "users_with_exemption": len(b.users & self.exemption_holders),
        }


def _keys(by: str | None, r: f.Record, user: str, policy: Policy | None, month: str) -> list[str]:
    match by:
        case None:
            return []
        case "user":
            return [user]
        case "group":
            return groups_of(f.user(r), policy, f.groups(r))
        case "site":
            return [f.site(r) or "(unknown)"]
        case "category":
            return [f.category(r) or "(unknown)"]
        case "month":
            return [month]
        case _:
            return [f.outcome(r) or "(unknown)"]


# The fields each --by reads (after the timestamp, outcome, user and exemption every row needs).
_WANTED = {
    "group": (ff.GROUPS,),
    "site": (ff.SITE, ff.DOMAIN),
    "category": (ff.CATEGORY,),
}


class _Months:
    """``LocalTime(tz).at(key).strftime("%Y-%m")`` for well-formed keys, worked out per minute.

    A zone's offset changes on whole minutes, so every key of a UTC minute is in the
    same local month; the fast path's keys have their hour, minute and second in range.
    """

    def __init__(self, tz: dt.tzinfo) -> None:
        self.tz = tz
        self.minutes: dict[str, str] = {}
        self.hours: dict[str, dt.datetime] = {}
        self.names: dict[tuple[int, int], str] = {}

    def __call__(self, key: str) -> str:
        minute = key[:16]
        name = self.minutes.get(minute)
        if name is None:
            hour = self.hours.get(key[:13])
            if hour is None:
                hour = key_to_datetime(key[:13] + ":00:00.000000Z")
                if len(self.hours) >= 4096:
                    self.hours.clear()
                self.hours[key[:13]] = hour
            local = (hour + dt.timedelta(minutes=int(key[14:16]))).astimezone(self.tz)
            name = self.names.get((local.year, local.month))
            if name is None:
                name = self.names[local.year, local.month] = local.strftime("%Y-%m")
            if len(self.minutes) >= 4096:
                self.minutes.clear()
            self.minutes[minute] = name
        return name


class _Tally:
    """The counts so far; records come whole (`add`) or as counted fields (`flush`)."""

    def __init__(self, by: str | None, tz: dt.tzinfo, policy: Policy | None) -> None:
        self.by = by
        self.policy = policy
        self.local = LocalTime(tz)
        self.rows: dict[str, Bucket] = {}
        self.total = Bucket()
        self.seen_allowed: set[str] = set()
        self.other = 0
        self.fields = (ff.TS, ff.OUTCOME, ff.USER, ff.EXEMPTION, *_WANTED.get(by or "", ()))
        self.counts: dict[tuple[Any, ...], int] = {}
        self.months = _Months(tz)

    def add(self, r: f.Record, key: str, month: str | None = None, n: int = 1) -> None:
        outcome = f.outcome(r)
        if outcome is None:
            self.other += n
            return
        user = f.user(r) or f.NO_USER
        allowed = outcome == "allowed"
        if self.by == "month" and month is None:
            month = self.local.at(key).strftime("%Y-%m")
        buckets = [self.total] + [
            self.rows.setdefault(k, Bucket())
            for k in _keys(self.by, r, user, self.policy, month or "")
        ]
        for b in buckets:
            if allowed:
                b.allowed += n
            else:
                b.blocked += n
            b.users.add(user)
        if allowed and f.exemption_id(r):
            self.seen_allowed.add(user)

    def flush(self) -> None:
        """Count the fast path's field combinations as the records they stand for."""
        names = self.fields[1:]
        for seen, n in self.counts.items():
            # A month-labelled access is (fields, month); anything else is the fields alone.
            texts, month = seen if isinstance(seen[-1], str) else (seen, None)
            self.add(ff.partial_record(names, texts), "", month, n)
        self.counts.clear()

    def counter(self) -> Counter:
        return Counter(
            layouts=ff.Layouts(self.fields),
            counts=self.counts,
            parsed=self.add,
            flush=self.flush,
            label=self.months if self.by == "month" else None,
        )

    def stats(self, policy: Policy | None, period: Period) -> Stats:
        in_policy = holders(policy, period)
        return Stats(
            self.by,
            self.rows,
            self.total,
            in_policy | self.seen_allowed,
            len(in_policy),
            self.other,
        )


def compute(
    entries: Iterable[Entry], by: str | None, tz: dt.tzinfo, policy: Policy | None, period: Period
) -> Stats:
    """The counts over ``entries``; a `LogReader` is read the fast way (`fastscan`)."""
    tally = _Tally(by, tz, policy)
    if isinstance(entries, LogReader) and not entries.prefilter.groups:
        scan(entries, tally.counter())
    else:
        for e in entries:
            tally.add(e.record, e.key)
    return tally.stats(policy, period)


def _suppress(value: int, below: int | None) -> int | None:
    return None if below is not None and 0 < value < below else value


def to_json(
    stats: Stats, period: Period, tz_name: str, below: int | None, damaged: int
) -> dict[str, Any]:
    def row(b: Bucket) -> dict[str, int | None]:
        return {k: _suppress(v, below) for k, v in stats.values(b).items()}

    return {
        "by": stats.by,
        "period": {
            "since": period.since.isoformat() if period.since else None,
            "until": period.until.isoformat() if period.until else None,
            "timezone": tz_name,
        },
        # null means "withheld": a count from 1 to suppress_below - 1
        "suppress_below": below,
        "rows": [{"key": k, **row(stats.rows[k])} for k in sorted(stats.rows)],
        "total": row(stats.total),
        "exemption_holders": _suppress(len(stats.exemption_holders), below),
        "other_events": stats.other_events,
        "damaged_lines": damaged,
    }


def _cells(data: dict[str, Any], below: int | None) -> list[str]:
    return [f"<{below}" if data[c] is None else str(data[c]) for c in COLUMNS]


def write(out: IO[str], data: dict[str, Any], fmt: str) -> None:
    """Table, CSV or JSON of `to_json`'s data, so every format shows the same numbers."""
    below = data["suppress_below"]
    if fmt == "json":
        json.dump(data, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return
    label = data["by"] or "total"
    lines = [[label, *COLUMNS]]
    lines += [[r["key"], *_cells(r, below)] for r in data["rows"]]
    if data["by"] is not None or not data["rows"]:
        lines.append([TOTAL, *_cells(data["total"], below)])
    if fmt == "csv":
        csv.writer(out, lineterminator="\n").writerows(lines)
        return
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)
        ]
        out.write("  ".join(cells).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")
    holders_text = (
        "<" + str(below) if data["exemption_holders"] is None else data["exemption_holders"]
    )
    out.write(f"\nusers holding an exemption in the period: {holders_text}\n")
    if below is not None:
        out.write(f"counts from 1 to {below - 1} are shown as <{below}\n")
