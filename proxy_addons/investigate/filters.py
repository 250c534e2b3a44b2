"""Which records a search selects, and the cheap byte test that goes before it.

Every filter given must hold (AND); a filter given several times matches any
of its values (OR). Filters about accesses (site, category, outcome) exclude
the other events (policy loaded, exemption granted …); filters about people,
exemptions, reasons and time apply to every record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from proxy_addons.errors import ConfigError
from proxy_addons.hosts import normalise_host
from proxy_addons.investigate import fields as f
from proxy_addons.investigate.read import Prefilter

OUTCOMES = ("allowed", "blocked")


@dataclass(frozen=True, slots=True)
class Criteria:
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    # group -> members, from the policy; records' own socialgate.groups also count
    group_members: Mapping[str, frozenset[str]] | None = None
    sites: tuple[str, ...] = ()  # normalised domains
    categories: frozenset[str] = frozenset()
    outcomes: frozenset[str] = frozenset()
    reasons: frozenset[str] = frozenset()
    exemptions: frozenset[str] = frozenset()

    @property
    def access_only(self) -> bool:
        return bool(self.sites or self.categories or self.outcomes)

    def matches(self, record: f.Record) -> bool:
        if self.access_only and not f.is_access(record):
            return False
        if self.users and not self._user_matches(record):
            return False
        if self.groups and not self._group_matches(record):
            return False
        if self.outcomes and f.outcome(record) not in self.outcomes:
            return False
        if self.categories and f.category(record) not in self.categories:
            return False
        if self.reasons and f.reason(record) not in self.reasons:
            return False
        if self.exemptions and f.exemption_id(record) not in self.exemptions:
            return False
        return not self.sites or self._site_matches(record)

    def _user_matches(self, record: f.Record) -> bool:
        # An admin action about the user (exemption granted to them) belongs to their case.
        return f.user(record) in self.users or f.target_user(record) in self.users

    def _group_matches(self, record: f.Record) -> bool:
        if not self.groups.isdisjoint(f.groups(record)):
            return True
        if f.target_group(record) in self.groups:
            return True
        members = self.group_members or {}
        people = {f.user(record), f.target_user(record)} - {None}
        return any(not people.isdisjoint(members.get(g, ())) for g in self.groups)

    def _site_matches(self, record: f.Record) -> bool:
        candidates = f.names(record)
        s = f.site(record)
        if s is not None:
            candidates.append(s)
        for name in candidates:
            for wanted in self.sites:
                if name == wanted or name.endswith("." + wanted):
                    return True
        return False

    def prefilter(self) -> Prefilter:
        """Byte strings any matching line must contain."""
        groups: list[tuple[bytes, ...]] = []
        if self.users:
            groups.append(tuple(n for u in self.users for n in _string_needles(u)))
        if self.groups:
            wanted = set(self.groups)
            for g in self.groups:
                wanted |= (self.group_members or {}).get(g, frozenset())
            groups.append(tuple(n for w in wanted for n in _string_needles(w)))
        if self.sites:
            # A subdomain ends with the site, so the site's text is always in the line.
            groups.append(tuple(s.encode("ascii") for s in self.sites if s.isascii()))
        if self.exemptions:
            groups.append(tuple(n for e in self.exemptions for n in _string_needles(e)))
        if self.categories:
            groups.append(tuple(n for c in self.categories for n in _string_needles(c)))
        return Prefilter(tuple(g for g in groups if g))


def _string_needles(value: str) -> tuple[bytes, ...]:
    """A JSON string as it may appear in a line: as-is (UTF-8) and ASCII-escaped."""
    plain = json.dumps(value, ensure_ascii=False).encode("utf-8")
    escaped = json.dumps(value, ensure_ascii=True).encode("ascii")
    return (plain,) if plain == escaped else (plain, escaped)


def normalise_site(value: str) -> str:
    host = normalise_host(value)
    if host is None:
        raise ConfigError(f"--site: {value!r} is not a host name")
    return host


def make_criteria(
    *,
    users: tuple[str, ...] = (),
    groups: tuple[str, ...] = (),
    group_members: Mapping[str, frozenset[str]] | None = None,
    sites: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    outcomes: tuple[str, ...] = (),
    reasons: tuple[str, ...] = (),
    exemptions: tuple[str, ...] = (),
) -> Criteria:
    """Criteria from option values, validated (`ConfigError` names the option)."""
    for o in outcomes:
        if o not in OUTCOMES:
            raise ConfigError(f"--outcome: {o!r} is not one of {', '.join(OUTCOMES)}")
    return Criteria(
        users=frozenset(users),
        groups=frozenset(groups),
        group_members=group_members,
        sites=tuple(dict.fromkeys(normalise_site(s) for s in sites)),
        categories=frozenset(categories),
        outcomes=frozenset(outcomes),
        reasons=frozenset(reasons),
        exemptions=frozenset(exemptions),
    )
