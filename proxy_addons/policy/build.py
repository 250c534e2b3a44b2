"""Freezing a validated document into the `Policy` the proxy uses, with its indexes."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass

from proxy_addons.hosts import DomainSet, IPAddress, IPNetwork, NetworkSet
from proxy_addons.policy.categories import CategoryDraft
from proxy_addons.policy.model import UTC, Category, Exemption, Policy, Reminder, SiteIndex
from proxy_addons.policy.settings import Settings

SEP = "\x1f"  # separates category and site in SiteIndex values


@dataclass(frozen=True, slots=True)
class Sections:
    """Every section of a document that validated without a problem."""

    settings: Settings
    categories: dict[str, CategoryDraft]
    blocked: tuple[str, ...]
    groups: dict[str, frozenset[str]]
    source_addresses: dict[IPAddress, str]
    exemptions: list[Exemption]
    reminder: Reminder | None


def build_policy(path: str, sha256: str, doc: Sections) -> Policy:
    s = doc.settings
    index: dict[str, str] = {}
    networks: list[tuple[IPNetwork, str]] = []
    for name in doc.blocked:
        draft = doc.categories[name]
        _index_category(index, name, draft.domains)
        networks.extend((net, f"{name}{SEP}{net}") for net in draft.networks)
    built = {
        name: Category(name, d.description, DomainSet.adopt(d.domains), tuple(d.networks))
        for name, d in doc.categories.items()
    }

    user_groups: dict[str, list[str]] = {}
    for group, members in doc.groups.items():
        for member in sorted(members):
            user_groups.setdefault(member, []).append(group)
    by_user: dict[str, list[Exemption]] = {}
    for ex in doc.exemptions:
        subjects = [ex.user] if ex.user is not None else sorted(doc.groups[ex.group or ""])
        for user in subjects:
            mine = by_user.setdefault(user, [])
            if not mine or mine[-1] is not ex:
                mine.append(ex)

    return Policy(
        path=path,
        sha256=sha256,
        version=_given(s.version),
        organisation=_given(s.organisation),
        contact=_given(s.contact),
        policy_url=_given(s.policy_url),
        categories=types.MappingProxyType(built),
        blocked_categories=doc.blocked,
        groups=types.MappingProxyType(doc.groups),
        source_addresses=types.MappingProxyType(doc.source_addresses),
        exemptions=tuple(doc.exemptions),
        reminder=doc.reminder,
        index=SiteIndex(DomainSet.adopt(index), NetworkSet(networks)),
        exemptions_by_user=types.MappingProxyType({u: tuple(exs) for u, exs in by_user.items()}),
        user_groups=types.MappingProxyType({u: tuple(g) for u, g in user_groups.items()}),
        timezone=s.timezone or UTC,
        apply_url=s.apply_url,
        max_exemption_days=s.max_days,
    )


def _given[T](value: T | None) -> T:
    # A required setting is None only when a problem was reported, and then nothing is built.
    assert value is not None
    return value


def _index_category(index: dict[str, str], category: str, domains: Mapping[str, str]) -> None:
    """Add a category's domains to the index; the first blocked category listing one wins."""
    prefix = category + SEP
    shared: dict[str, str] = {}  # one value string per [site] group, not per entry
    first = not index
    for domain, site in domains.items():
        if not first and domain in index:
            continue
        if site == domain:
            # An empty site means "the entry itself" (see decide.classify): one shared
            # string instead of a million "category\x1fdomain" copies (~70 MB at 1M).
            index[domain] = prefix
        else:
            value = shared.get(site)
            if value is None:
                value = shared[site] = prefix + site
            index[domain] = value
