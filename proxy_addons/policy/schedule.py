"""Schedules as text: the day names, the clock, parsing and rendering.

One vocabulary for the policy file (``days: [mon, tue]``, ``to: "24:00"``),
the command line (``--schedule "mon-fri 09:00-17:00 Europe/London"``) and
every place a schedule is shown to a person.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

from proxy_addons.errors import EditRefused
from proxy_addons.policy.model import Schedule

# Index = datetime.weekday(), as `Schedule.days` holds them.
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NUMBERS = {name: i for i, name in enumerate(DAY_NAMES)}

# The policy file: 00:00 to 23:59, and 24:00 as an end (midnight, end of the day).
_FILE_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
END_OF_DAY = "24:00"
# The command line is laxer (8:00); the loader checks the result again.
_CLI_CLOCK = re.compile(r"^([01]?[0-9]|2[0-4]):[0-5][0-9]$")


def parse_clock(text: str, *, end: bool) -> dt.time | None:
    """The time of ``HH:MM`` as written in the policy file; None if it is not one."""
    if end and text == END_OF_DAY:
        return dt.time(0, 0)
    m = _FILE_CLOCK.match(text)
    return dt.time(int(m.group(1)), int(m.group(2))) if m else None


def clock_range(end: bool) -> str:
    """The times `parse_clock` accepts, for messages."""
    return f"00:00 to {END_OF_DAY}" if end else "00:00 to 23:59"


# -- rendering ---------------------------------------------------------------

Style = Literal["compact", "prose"]


def schedule_text(s: Schedule, style: Style = "compact") -> str:
    """The schedule as one line of text.

    ``compact`` (commands, JSON output, audit records; the ``--schedule``
    syntax): ``mon,tue 09:00-24:00 Europe/London``. ``prose`` (pages and
    reports read by people): ``Mon, Tue 09:00–24:00 (Europe/London)``.
    An end at midnight is 24:00 in both, as the policy file writes it.
    """
    days = [DAY_NAMES[d] for d in sorted(s.days)]
    start = s.start.strftime("%H:%M")
    end = END_OF_DAY if s.end == dt.time(0, 0) else s.end.strftime("%H:%M")
    if style == "prose":
        return f"{', '.join(d.title() for d in days)} {start}–{end} ({s.timezone.key})"
    return f"{','.join(days)} {start}-{end} {s.timezone.key}"


# -- the command line --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A schedule as given on the command line, to be written into the policy file."""

    days: tuple[str, ...]  # mon … sun
    start: str  # HH:MM
    end: str  # HH:MM
    timezone: str | None = None  # None: the policy's time zone


def parse_days(text: str) -> tuple[str, ...]:
    """``mon-fri``, ``mon,wed,fri`` or ``sat-sun`` → the day names, in week order."""
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NUMBERS or (last and last not in DAY_NUMBERS):
            raise EditRefused(f"--schedule: {part!r} is not a day or range like mon-fri")
        a = DAY_NUMBERS[first]
        b = DAY_NUMBERS[last] if last else a
        i = a
        while True:  # a range may wrap past Sunday (fri-mon)
            days.add(i)
            if i == b:
                break
            i = (i + 1) % 7
    return tuple(DAY_NAMES[i] for i in sorted(days))


def parse_schedule(text: str) -> ScheduleSpec:
    """``DAYS HH:MM-HH:MM [TIMEZONE]``, e.g. ``mon-fri 08:00-18:00 Europe/London``."""
    parts = text.split()
    if len(parts) not in (2, 3) or parts[1].count("-") != 1:
        raise EditRefused(
            f"--schedule {text!r}: expected DAYS HH:MM-HH:MM [TIMEZONE], "
            "e.g. 'mon-fri 08:00-18:00 Europe/London'"
        )
    start, end = parts[1].split("-")
    for t in (start, end):
        if not _CLI_CLOCK.match(t):
            raise EditRefused(f"--schedule {text!r}: {t!r} is not a time HH:MM")
    start, end = (t.zfill(5) for t in (start, end))
    return ScheduleSpec(parse_days(parts[0]), start, end, parts[2] if len(parts) == 3 else None)
