"""What the policy says about people: groups and the exemptions they held in a period."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from proxy_addons.investigate.timeparse import Period
from proxy_addons.policy.model import Exemption, Policy
from proxy_addons.policy.schedule import schedule_text

NO_GROUP = "(none)"


def period_dates(period: Period, tz: dt.tzinfo) -> tuple[dt.date | None, dt.date | None]:
    """First and last local day the period touches (exemption dates are local days)."""
    first = period.since.astimezone(tz).date() if period.since else None
    last = (
        (period.until - dt.timedelta(microseconds=1)).astimezone(tz).date()
        if period.until
        else None
    )
    return first, last


def last_valid_day(ex: Exemption) -> dt.date:
    """Revocation ends an exemption on the day before its date (decide.exemption_verdict)."""
    if ex.revoked is not None:
        return min(ex.expires, ex.revoked.date - dt.timedelta(days=1))
    return ex.expires


def held_in(ex: Exemption, policy: Policy, period: Period) -> bool:
    """Whether the exemption was valid on any day of the period."""
    first, last = period_dates(period, policy.timezone)
    if last is not None and ex.granted > last:
        return False
    return not (first is not None and last_valid_day(ex) < first)


def exemptions_of(user: str, policy: Policy, period: Period) -> list[Exemption]:
    return [ex for ex in policy.exemptions_by_user.get(user, ()) if held_in(ex, policy, period)]


def holders(policy: Policy | None, period: Period) -> set[str]:
    """Users holding an exemption valid at some time in the period, per the policy."""
    if policy is None:
        return set()
    out: set[str] = set()
    for ex in policy.exemptions:
        if not held_in(ex, policy, period):
            continue
        if ex.user is not None:
            out.add(ex.user)
        elif ex.group is not None:
            out.update(policy.groups.get(ex.group, ()))
    return out


def groups_of(user: str | None, policy: Policy | None, record_groups: Iterable[str]) -> list[str]:
    """The policy's groups for the user plus those the record carries, or ``(none)``."""
    found = dict.fromkeys(record_groups)
    if policy is not None and user is not None:
        found.update(dict.fromkeys(policy.user_groups.get(user, ())))
    return list(found) or [NO_GROUP]


def describe_schedule(ex: Exemption) -> str:
    return schedule_text(ex.schedule, "prose") if ex.schedule is not None else "any time"
