"""What an exemption edit may do: dates in force at once, expiry limits, ids, live entries.

Checked against the policy as it is before the edit; the loader checks the
result again before anything is written.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from proxy_addons.errors import EditRefused
from proxy_addons.hosts import normalise_host
from proxy_addons.policy.model import Exemption, Policy

ID_PREFIX = "EX"
_ID = re.compile(rf"^{ID_PREFIX}-(\d{{4}})-(\d+)$")


def today_in(zones: list[ZoneInfo], now: dt.datetime | None = None) -> dt.date:
    """The earliest calendar date among ``zones`` (and UTC) at ``now``.

    Dates written by the CLI (granted, revoked) must be in force at once
    wherever the proxy reads them: the earliest "today" is never in the future.
    """
    now = now or dt.datetime.now(dt.UTC)
    return min(now.astimezone(z).date() for z in [ZoneInfo("UTC"), *zones])


def today_for(policy: Policy, ex: Exemption, now: dt.datetime | None) -> dt.date:
    """`today_in` the policy's time zone and the exemption's schedule's."""
    zones = [policy.timezone]
    if ex.schedule is not None:
        zones.append(ex.schedule.timezone)
    return today_in(zones, now)


def check_expiry(policy: Policy, granted: dt.date, expires: dt.date, today: dt.date) -> None:
    if expires < today:
        raise EditRefused(f"--expires {expires}: the date is in the past")
    if expires < granted:
        raise EditRefused(f"--expires {expires}: before the first valid day {granted}")
    days = (expires - granted).days + 1
    if days > policy.max_exemption_days:
        last = granted + dt.timedelta(days=policy.max_exemption_days - 1)
        raise EditRefused(
            f"--expires {expires}: {days} days from {granted} is more than the policy's "
            f"max_exemption_days ({policy.max_exemption_days}); the latest allowed is {last}"
        )


def required(value: str | None, option: str) -> str:
    if value is None or not value.strip():
        raise EditRefused(f"{option} must not be empty")
    return value.strip()


def next_id(policy: Policy, year: int) -> str:
    """``EX-<year>-<NNN>``: one more than the highest number used this year."""
    highest = 0
    for e in policy.exemptions:
        m = _ID.match(e.id)
        if m and int(m.group(1)) == year:
            highest = max(highest, int(m.group(2)))
    return f"{ID_PREFIX}-{year}-{highest + 1:03d}"


def unrevoked(policy: Policy, exemption_id: str, path: str, if_revoked: str) -> Exemption:
    """The exemption, refused when it is not in the file or already revoked.

    ``if_revoked`` words that refusal; it may use ``{id}``, ``{date}`` and ``{by}``.
    """
    ex = policy.exemption(exemption_id)
    if ex is None:
        raise EditRefused(f"no exemption {exemption_id!r} in {path}")
    if ex.revoked is not None:
        r = ex.revoked
        raise EditRefused(if_revoked.format(id=exemption_id, date=r.date, by=r.by))
    return ex


def mismatches(obj: object, **fields: object) -> list[str]:
    """How ``obj`` differs from the expected ``fields`` (empty: as expected)."""
    return [
        f"{k} is {getattr(obj, k)!r}, expected {v!r}"
        for k, v in fields.items()
        if getattr(obj, k) != v
    ]


def unblocked_sites(policy: Policy, sites: tuple[str, ...] | list[str]) -> list[str]:
    """The sites no blocked category contains: exempting them does nothing (a typo?).

    A site is a category name (it must be blocked) or a domain that is, or is below, an
    entry of a blocked category's list.
    """
    out: list[str] = []
    for site in sites:
        if site in policy.categories:
            if site not in policy.blocked_categories:
                out.append(site)
            continue
        host = normalise_host(site)
        if host is not None and policy.index.domains.match(host) is None:
            out.append(site)  # (not a domain at all: the loader says so)
    return out


def check_sites(policy: Policy, sites: tuple[str, ...]) -> None:
    """Refuse a grant of a site that no blocked category contains (``facebok.com``)."""
    bad = unblocked_sites(policy, sites)
    if bad:
        raise EditRefused(
            f"--sites {bad[0]}: no blocked category contains it, so there is nothing to exempt "
            "(a typo? see 'socialgate check --user U URL')"
        )
