"""The policy as the proxy uses it: immutable, validated, indexed.

Built only by `proxy_addons.policy.load`; everything downstream (decisions,
pages, audit) reads it and never changes it, so a reload is a single
reference swap.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from proxy_addons.hosts import DomainSet, IPAddress, IPNetwork, NetworkSet

UTC = ZoneInfo("UTC")


class Access(StrEnum):
    FULL = "full"
    READ_ONLY = "read-only"


# Methods a read-only exemption allows: reading, never posting or uploading.
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Schedule:
    """When an exemption may be used, in the exemption's own time zone."""

    days: frozenset[int]  # 0 = Monday … 6 = Sunday (datetime.weekday())
    start: dt.time  # inclusive
    end: dt.time  # exclusive; end <= start means the window runs past midnight
    timezone: ZoneInfo

    def allows(self, when: dt.datetime) -> bool:
        local = when.astimezone(self.timezone)
        t = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return local.weekday() in self.days and self.start <= t < self.end
        # Overnight window: the part after midnight belongs to the previous day.
        if t >= self.start:
            return local.weekday() in self.days
        if t < self.end:
            return (local.weekday() - 1) % 7 in self.days
        return False


@dataclass(frozen=True, slots=True)
class Revocation:
    date: dt.date
    by: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        """JSON-safe, for records and reports."""
        return {"date": self.date.isoformat(), "by": self.by, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Exemption:
    id: str
    user: str | None  # exactly one of user / group is set
    group: str | None
    sites: tuple[str, ...]  # as written: normalised domains or category names
    access: Access
    business_case: str
    approved_by: str
    granted: dt.date  # first valid day, inclusive
    expires: dt.date  # last valid day, inclusive
    ticket: str | None = None
    schedule: Schedule | None = None
    revoked: Revocation | None = None
    line: int = 0  # line of the entry in the policy file

    def terms(self) -> dict[str, object]:
        """What the exemption allows, until when and on whose approval (JSON-safe)."""
        return {
            "sites": list(self.sites),
            "access": str(self.access),
            "business_case": self.business_case,
            "approved_by": self.approved_by,
            "ticket": self.ticket,
            "granted": self.granted.isoformat(),
            "expires": self.expires.isoformat(),
        }

    @property
    def subject(self) -> str:
        return f"user:{self.user}" if self.user is not None else f"group:{self.group}"


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    description: str
    domains: DomainSet  # domain -> site (the [site] group the list puts it in)
    networks: tuple[IPNetwork, ...]


@dataclass(frozen=True, slots=True)
class Reminder:
    every: dt.timedelta
    text: str


@dataclass(frozen=True, slots=True)
class SiteIndex:
    """What is blocked, merged over all blocked categories for O(labels) lookup.

    Values are ``"category\\x1fsite"`` so one dict serves every category
    without a tuple per entry (1M-domain lists must fit in memory).
    """

    domains: DomainSet
    networks: NetworkSet


@dataclass(frozen=True, slots=True)
class Policy:
    path: str
    sha256: str  # of the policy file and every category file it reads, in order
    version: int
    organisation: str
    contact: str
    policy_url: str
    categories: Mapping[str, Category]
    blocked_categories: tuple[str, ...]
    groups: Mapping[str, frozenset[str]]
    source_addresses: Mapping[IPAddress, str]
    exemptions: tuple[Exemption, ...]
    reminder: Reminder | None
    index: SiteIndex
    # user -> exemptions naming the user directly or through one of their groups
    exemptions_by_user: Mapping[str, tuple[Exemption, ...]]
    user_groups: Mapping[str, tuple[str, ...]]
    timezone: ZoneInfo = UTC  # the zone in which granted/expires dates are read
    apply_url: str | None = None  # where staff apply for an exemption (block page)
    max_exemption_days: int = 365

    def exemption(self, exemption_id: str) -> Exemption | None:
        for e in self.exemptions:
            if e.id == exemption_id:
                return e
        return None
