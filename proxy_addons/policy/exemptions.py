"""The ``exemptions`` section: who may reach which sites, how, when, until when."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from yaml.nodes import Node, ScalarNode, SequenceNode

from proxy_addons.hosts import domain_name
from proxy_addons.policy.model import Access, Exemption, Revocation, Schedule
from proxy_addons.policy.nodes import BAD_REPORTED, NodeReader, known, value_of
from proxy_addons.policy.schedule import DAY_NAMES, DAY_NUMBERS, clock_range, parse_clock
from proxy_addons.policy.schema import (
    CATEGORY_NAME,
    EXEMPTION_ID,
    EXEMPTION_KEYS,
    EXEMPTION_REQUIRED,
    REVOKED_KEYS,
    SCHEDULE_KEYS,
    SCHEDULE_REQUIRED,
)
from proxy_addons.policy.yamlmarks import INT_TAG, STR_TAG, line_of


@dataclass(frozen=True, slots=True)
class Names:
    """What an exemption may refer to, as defined elsewhere in the file (None: unknown)."""

    categories: Mapping[str, object] | None
    groups: Mapping[str, frozenset[str]]
    users: set[str] | None  # None: any name
    timezone: ZoneInfo  # the policy's, for schedules that name none
    max_days: int


def read_exemptions(r: NodeReader, node: Node | None, names: Names) -> list[Exemption] | None:
    out: list[Exemption] = []
    if node is None:
        return out
    items = r.sequence(node, "exemptions")
    if items is None:
        return None
    ids: dict[str, int] = {}  # id -> line of its first use
    for item in items:
        ex = _exemption(r, item, names, ids)
        if ex is not None:
            out.append(ex)
    return out


def _exemption(r: NodeReader, node: Node, names: Names, ids: dict[str, int]) -> Exemption | None:
    before = len(r.errors)
    fields = r.mapping(node, "exemption", EXEMPTION_KEYS, EXEMPTION_REQUIRED)
    if fields is None:
        return None

    def get(key: str) -> Node | None:
        return value_of(fields, key)

    ex_id = None
    if (n := get("id")) is not None:
        ex_id = r.string(n, "exemption id")
        if ex_id is not None and not EXEMPTION_ID.match(ex_id):
            r.err(n, f"exemption id: {ex_id!r} must be letters, digits and . _ : / -")
            ex_id = None
        elif ex_id is not None and ex_id in ids:
            r.err(n, f"duplicate exemption id {ex_id!r} (first at line {ids[ex_id]})")
        elif ex_id is not None:
            ids[ex_id] = line_of(n)
    what = f"exemption {ex_id}" if ex_id else "exemption"

    user = group = None
    user_node, group_node = get("user"), get("group")
    if (user_node is None) == (group_node is None):
        r.err(node, f"{what}: give exactly one of 'user' or 'group'")
    if user_node is not None:
        user = r.name(user_node, f"{what}: user")
        if user is not None and names.users is not None and user not in names.users:
            r.err(user_node, f"{what}: unknown user {user!r} (not in users)")
    if group_node is not None:
        group = r.name(group_node, f"{what}: group")
        if group is not None and group not in names.groups:
            r.err(group_node, f"{what}: unknown group {group!r}{known(names.groups)}")

    sites: list[str] = []
    if (n := get("sites")) is not None:
        for item in r.sequence(n, f"{what}: sites") or ():
            site = _site(r, item, what, names.categories)
            if site is not None and site in sites:
                r.err(item, f"{what}: site {site!r} is listed twice")
            elif site is not None:
                sites.append(site)
        if isinstance(n, SequenceNode) and not n.value:
            r.err(n, f"{what}: sites must name at least one site or category")

    access = None
    if (n := get("access")) is not None:
        text = r.string(n, f"{what}: access")
        if text is not None:
            try:
                access = Access(text)
            except ValueError:
                r.err(n, f"{what}: access must be 'full' or 'read-only', got {text!r}")

    business_case = r.opt(get("business_case"), lambda n: r.string(n, f"{what}: business_case"))
    approved_by = r.opt(get("approved_by"), lambda n: r.name(n, f"{what}: approved_by"))
    ticket = None
    if (n := get("ticket")) is not None:
        value = r.scalar(n, f"{what}: ticket")
        if isinstance(value, int) and not isinstance(value, bool):
            ticket = str(value)  # CHG numbers are often written bare
        elif value is not BAD_REPORTED:
            ticket = r.string(n, f"{what}: ticket")
    granted = r.opt(get("granted"), lambda n: r.date(n, f"{what}: granted"))
    expires = r.opt(get("expires"), lambda n: r.date(n, f"{what}: expires"))
    if granted is not None and expires is not None:
        n = get("expires")
        assert n is not None
        days = (expires - granted).days + 1
        if expires < granted:
            r.err(n, f"{what}: expires {expires} is before granted {granted}")
        elif days > names.max_days:
            r.err(
                n,
                f"{what}: lasts {days} days, more than max_exemption_days ({names.max_days})",
            )
    schedule = revoked = None
    if "schedule" in fields:
        schedule = _schedule(r, *fields["schedule"][::-1], what, names.timezone)
    if "revoked" in fields:
        revoked = _revoked(r, *fields["revoked"][::-1], what)

    if (
        len(r.errors) != before
        or ex_id is None
        or access is None
        or business_case is None
        or approved_by is None
        or granted is None
        or expires is None
    ):
        return None
    return Exemption(
        id=ex_id,
        user=user,
        group=group,
        sites=tuple(sites),
        access=access,
        business_case=business_case,
        approved_by=approved_by,
        granted=granted,
        expires=expires,
        ticket=ticket,
        schedule=schedule,
        revoked=revoked,
        line=line_of(node),
    )


def _site(
    r: NodeReader, node: Node, what: str, categories: Mapping[str, object] | None
) -> str | None:
    text = r.string(node, f"{what}: sites")
    if text is None:
        return None
    if categories is not None and text in categories:
        return text
    domain = domain_name(text)
    if domain is None:
        if "." not in text.strip(".") and CATEGORY_NAME.match(text):
            r.err(
                node,
                f"{what}: unknown category {text!r}: neither a valid domain nor a category"
                f" name{known(categories or {})}",
            )
        else:
            r.err(node, f"{what}: site {text!r} is neither a valid domain nor a category name")
        return None
    return domain


def _schedule(
    r: NodeReader, node: Node, key: Node, what: str, default_tz: ZoneInfo
) -> Schedule | None:
    what = f"{what}: schedule"
    fields = r.mapping(node, what, SCHEDULE_KEYS, SCHEDULE_REQUIRED, at=key)
    if fields is None:
        return None
    ok = True
    days: set[int] = set()
    if "days" in fields:
        items = r.sequence(fields["days"][1], f"{what}: days")
        ok = items is not None and ok
        for item in items or ():
            day = r.string(item, f"{what}: days")
            if day is None:
                ok = False
            elif day not in DAY_NUMBERS:
                r.err(item, f"{what}: unknown day {day!r} (use {', '.join(DAY_NAMES)})")
                ok = False
            elif DAY_NUMBERS[day] in days:
                r.err(item, f"{what}: day {day!r} is listed twice")
                ok = False
            else:
                days.add(DAY_NUMBERS[day])
        if items is not None and not items:
            r.err(fields["days"][1], f"{what}: days must name at least one day")
            ok = False
    start = _clock(r, fields["from"][1], f"{what}: from", end=False) if "from" in fields else None
    end = _clock(r, fields["to"][1], f"{what}: to", end=True) if "to" in fields else None
    if start is not None and end is not None and start == end:
        r.err(fields["to"][1], f"{what}: 'from' and 'to' are equal (an empty window)")
        ok = False
    tz = default_tz
    if "timezone" in fields:
        zone = r.timezone(fields["timezone"][1], f"{what}: timezone")
        ok = zone is not None and ok
        tz = zone or default_tz
    if not ok or start is None or end is None:
        return None
    return Schedule(frozenset(days), start, end, tz)


def _clock(r: NodeReader, node: Node, what: str, *, end: bool) -> dt.time | None:
    # YAML 1.1 reads an unquoted 18:00 as the base-60 integer 1080; the
    # text as written is what the admin meant (and what YAML 1.2 editors show).
    if isinstance(node, ScalarNode) and node.tag in (STR_TAG, INT_TAG):
        text = str(node.value)
    else:
        text = r.string(node, what) or ""
        if not text:
            return None
    clock = parse_clock(text, end=end)
    if clock is None:
        r.err(node, f"{what}: {text!r} is not a time HH:MM ({clock_range(end)})")
    return clock


def _revoked(r: NodeReader, node: Node, key: Node, what: str) -> Revocation | None:
    what = f"{what}: revoked"
    fields = r.mapping(node, what, REVOKED_KEYS, REVOKED_KEYS, at=key)
    if fields is None:
        return None
    date = r.date(fields["date"][1], f"{what}: date") if "date" in fields else None
    by = r.name(fields["by"][1], f"{what}: by") if "by" in fields else None
    reason = r.string(fields["reason"][1], f"{what}: reason") if "reason" in fields else None
    if date is None or by is None or reason is None:
        return None
    return Revocation(date, by, reason)
