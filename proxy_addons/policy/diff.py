"""What changed between two policies: the summary a `policy-loaded` record carries.

Investigators ask "when did EX-2026-004 start (or stop) working?": the answer
is the policy-loaded record whose summary names it. The summary is JSON-safe
and uses lists of objects rather than maps keyed by id, so it indexes well.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from proxy_addons.policy.model import Category, Exemption, Policy

# Exemption fields that are bookkeeping, not meaning: an entry moving down the
# file because one above it grew is not a change.
_IGNORED_EXEMPTION_FIELDS = frozenset({"line"})
_EXEMPTION_FIELDS = tuple(
    f.name for f in dataclasses.fields(Exemption) if f.name not in _IGNORED_EXEMPTION_FIELDS
)
# Top-level settings compared one by one (categories, groups, exemptions are itemised).
_SETTINGS = (
    "version",
    "organisation",
    "contact",
    "policy_url",
    "apply_url",
    "blocked_categories",
    "source_addresses",
    "reminder",
    "timezone",
    "max_exemption_days",
)


def exemption_changes(old: Exemption, new: Exemption) -> list[str]:
    """Names of the fields that differ (``line`` ignored)."""
    return [f for f in _EXEMPTION_FIELDS if getattr(old, f) != getattr(new, f)]


@dataclass(frozen=True, slots=True)
class CategoryChange:
    name: str
    domains_before: int
    domains_after: int
    domains_added: int | None  # None: not compared (sizes only)
    domains_removed: int | None
    networks_changed: bool
    description_changed: bool


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    exemptions_added: tuple[str, ...] = ()
    exemptions_removed: tuple[str, ...] = ()
    # (id, fields that changed), e.g. ("EX-2026-001", ("expires", "approved_by"))
    exemptions_changed: tuple[tuple[str, tuple[str, ...]], ...] = ()
    groups_added: tuple[str, ...] = ()
    groups_removed: tuple[str, ...] = ()
    groups_changed: tuple[str, ...] = ()
    categories_added: tuple[str, ...] = ()
    categories_removed: tuple[str, ...] = ()
    categories_changed: tuple[CategoryChange, ...] = ()
    settings_changed: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not any(getattr(self, f.name) for f in dataclasses.fields(self))

    def summary(self) -> dict[str, Any]:
        """JSON-safe form for the audit record (``socialgate.changes``)."""
        return {
            "exemptions": {
                "added": list(self.exemptions_added),
                "removed": list(self.exemptions_removed),
                "changed": [
                    {"id": i, "fields": list(fields)} for i, fields in self.exemptions_changed
                ],
            },
            "groups": {
                "added": list(self.groups_added),
                "removed": list(self.groups_removed),
                "changed": list(self.groups_changed),
            },
            "categories": {
                "added": list(self.categories_added),
                "removed": list(self.categories_removed),
                "changed": [dataclasses.asdict(c) for c in self.categories_changed],
            },
            "settings": list(self.settings_changed),
        }

    def text(self) -> str:
        """One line for messages and logs, e.g. ``exemptions +EX-2026-004 ~EX-2026-001``."""
        parts: list[str] = []
        ex = [
            *(f"+{i}" for i in self.exemptions_added),
            *(f"-{i}" for i in self.exemptions_removed),
            *(f"~{i}({','.join(f)})" for i, f in self.exemptions_changed),
        ]
        if ex:
            parts.append("exemptions " + " ".join(ex))
        groups = [
            *(f"+{g}" for g in self.groups_added),
            *(f"-{g}" for g in self.groups_removed),
            *(f"~{g}" for g in self.groups_changed),
        ]
        if groups:
            parts.append("groups " + " ".join(groups))
        cats = [
            *(f"+{c}" for c in self.categories_added),
            *(f"-{c}" for c in self.categories_removed),
            *(
                f"~{c.name}({c.domains_before}->{c.domains_after} domains)"
                for c in self.categories_changed
            ),
        ]
        if cats:
            parts.append("categories " + " ".join(cats))
        if self.settings_changed:
            parts.append("settings " + ",".join(self.settings_changed))
        return "; ".join(parts) or "no changes"


def _category_change(old: Category, new: Category, *, domains: bool) -> CategoryChange | None:
    added: int | None = None
    removed: int | None = None
    if domains:
        # Site assignments matter too (an exemption for x.com covers its [x.com] entries).
        old_d, new_d = old.domains, new.domains
        added = sum(1 for d in new_d if old_d.get(d) != new_d[d])
        removed = sum(1 for d in old_d if d not in new_d)
        lists_changed = bool(added or removed)
    else:
        lists_changed = len(old.domains) != len(new.domains)
    networks_changed = old.networks != new.networks
    description_changed = old.description != new.description
    if not (lists_changed or networks_changed or description_changed):
        return None
    return CategoryChange(
        name=new.name,
        domains_before=len(old.domains),
        domains_after=len(new.domains),
        domains_added=added,
        domains_removed=removed,
        networks_changed=networks_changed,
        description_changed=description_changed,
    )


def diff_policies(old: Policy | None, new: Policy, *, domains: bool = True) -> PolicyDiff:
    """What ``new`` changes relative to ``old`` (None: everything in ``new`` is added).

    ``domains=False`` skips the per-domain comparison of category lists (a
    1M-entry list takes a fraction of a second): only their sizes are compared.
    Run it off the event loop for large lists.
    """
    if old is None:
        return PolicyDiff(
            exemptions_added=tuple(e.id for e in new.exemptions),
            groups_added=tuple(new.groups),
            categories_added=tuple(new.categories),
        )
    old_ex = {e.id: e for e in old.exemptions}
    new_ex = {e.id: e for e in new.exemptions}
    changed_ex: list[tuple[str, tuple[str, ...]]] = []
    for i, e in new_ex.items():
        if i in old_ex:
            fields = exemption_changes(old_ex[i], e)
            if fields:
                changed_ex.append((i, tuple(fields)))
    changed_cats: list[CategoryChange] = []
    for name, cat in new.categories.items():
        if name in old.categories:
            change = _category_change(old.categories[name], cat, domains=domains)
            if change is not None:
                changed_cats.append(change)
    return PolicyDiff(
        exemptions_added=tuple(i for i in new_ex if i not in old_ex),
        exemptions_removed=tuple(i for i in old_ex if i not in new_ex),
        exemptions_changed=tuple(changed_ex),
        groups_added=tuple(g for g in new.groups if g not in old.groups),
        groups_removed=tuple(g for g in old.groups if g not in new.groups),
        groups_changed=tuple(
            g for g in new.groups if g in old.groups and old.groups[g] != new.groups[g]
        ),
        categories_added=tuple(c for c in new.categories if c not in old.categories),
        categories_removed=tuple(c for c in old.categories if c not in new.categories),
        categories_changed=tuple(changed_cats),
        settings_changed=tuple(s for s in _SETTINGS if getattr(old, s) != getattr(new, s)),
    )
