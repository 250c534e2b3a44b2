"""`--since` / `--until` values: ISO dates and times, or relative ages like ``30d``.

Records carry UTC timestamps; what an investigator types is read in the
display time zone (``--tz``), because "the 3rd of March" means the local day.
A bare date as ``--until`` includes that whole day.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from proxy_addons.errors import ConfigError

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Canonical record timestamp: fixed width, so string order is time order.
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def parse_zone(name: str) -> ZoneInfo:
    """The named IANA zone, or a `ConfigError` naming ``--tz``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--tz: unknown time zone {name!r}") from None


def parse_when(
    option: str, text: str, tz: dt.tzinfo, now: dt.datetime, *, end: bool
) -> dt.datetime:
    """An aware UTC datetime for an option value.

    ``end`` marks an ``--until`` value: a bare date then means the end of that
    local day (the bound is exclusive), so ``--until 2026-03-31`` includes the 31st.
    """
    value = text.strip()
    m = _RELATIVE.match(value)
    if m:
        age = dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        return (now - age).astimezone(dt.UTC)
    try:
        if _DATE_ONLY.match(value):
            day = dt.date.fromisoformat(value)
            if end:
                day += dt.timedelta(days=1)
            return dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC)
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{option}: cannot read {text!r} as a date, a date and time (ISO 8601) "
            "or an age like 30d, 12h, 2w"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.astimezone(dt.UTC)


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open UTC interval [since, until); either end may be open."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None

    @property
    def since_key(self) -> str | None:
        return ts_key(self.since) if self.since else None

    @property
    def until_key(self) -> str | None:
        return ts_key(self.until) if self.until else None


def ts_key(when: dt.datetime) -> str:
    """The canonical record timestamp of an aware datetime."""
    return when.astimezone(dt.UTC).strftime(TS_FORMAT)


def period(
    since: str | None, until: str | None, tz: dt.tzinfo, now: dt.datetime | None = None
) -> Period:
    """Parse both bounds; `ConfigError` if the period is empty."""
    now = now or dt.datetime.now(dt.UTC)
    start = parse_when("--since", since, tz, now, end=False) if since else None
    stop = parse_when("--until", until, tz, now, end=True) if until else None
    if start is not None and stop is not None and stop <= start:
        raise ConfigError(f"--until {until!r} is not after --since {since!r}")
    return Period(start, stop)


def parse_record_time(value: object) -> str | None:
    """The canonical key of a record's ``@timestamp``; None if it is not a time.

    The writer always produces the canonical form; anything else is parsed so
    that merging by string order stays correct.
    """
    if not isinstance(value, str):
        return None
    if len(value) == 27 and value[10] == "T" and value[-1] == "Z" and value[19] == ".":
        return value
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None  # a time without a zone cannot be placed on the UTC line
    return ts_key(when)


def key_to_datetime(key: str) -> dt.datetime:
    """The aware UTC datetime of a canonical timestamp key."""
    return dt.datetime.fromisoformat(key)
