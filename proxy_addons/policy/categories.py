"""The ``categories`` and ``blocked_categories`` sections, and the list files they name."""

from __future__ import annotations

import hashlib
import io
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from yaml.nodes import Node

from proxy_addons.hosts import IPNetwork, domain_name, parse_domain_lines
from proxy_addons.policy.nodes import NodeReader, known
from proxy_addons.policy.policyfile import MAX_CATEGORY_BYTES, line_of_byte, megabytes
from proxy_addons.policy.schema import CATEGORY_KEYS, CATEGORY_NAME
from proxy_addons.policy.yamlmarks import line_of

ReadFile = Callable[[Path], bytes]


@dataclass
class CategoryDraft:
    """A category as read so far; frozen into a `Category` once the whole file is valid."""

    name: str
    line: int
    description: str = ""
    domains: dict[str, str] = field(default_factory=dict)
    networks: list[IPNetwork] = field(default_factory=list)


@dataclass
class ListFiles:
    """Where category list files are read from, and the digest they are added to."""

    base: Path
    read_file: ReadFile
    digest: hashlib._Hash

    def read(self, r: NodeReader, node: Node, rel: str) -> dict[str, str] | None:
        """The entries of the list ``rel`` names (problems noted against the list file)."""
        # Read (and hashed) at every mention, so each category owns its dict.
        path = self.base / rel
        shown = str(path)
        try:
            data = self.read_file(path)
        except OSError as e:
            r.err(node, f"cannot read category file {shown!r}: {e.strerror or e}")
            return None
        self.digest.update(data)
        if len(data) > MAX_CATEGORY_BYTES:
            r.err(0, f"category file is larger than {megabytes(MAX_CATEGORY_BYTES)}", shown)
            return None
        # Lines are decoded as they are read: a 1M-line list never exists
        # twice in memory as text.
        # utf-8-sig: lists saved by Windows editors start with a byte-order mark.
        lines = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=None)
        try:
            entries, problems = parse_domain_lines(lines)
        except UnicodeDecodeError:
            try:
                data.decode("utf-8")
                line = 0
            except UnicodeDecodeError as e:
                line = line_of_byte(data, e.start)
            r.err(line, "category file is not UTF-8 text", shown)
            return None
        for lineno, message in problems:
            r.err(lineno, message, shown)
        return entries


def read_categories(
    r: NodeReader, node: Node | None, files: ListFiles
) -> dict[str, CategoryDraft] | None:
    if node is None:
        return None
    spec = r.mapping(node, "categories", None)
    if spec is None:
        return None
    out: dict[str, CategoryDraft] = {}
    for name, (key, value) in spec.items():
        what = f"category {name}"
        if not CATEGORY_NAME.match(name):
            # Still defined below, so references to it do not add errors of their own.
            r.err(key, f"{what}: name must be letters, digits, '_' or '-' (no dots)")
        draft = CategoryDraft(name, line_of(key))
        out[name] = draft
        fields = r.mapping(value, what, CATEGORY_KEYS)
        if fields is None:
            continue
        if "description" in fields:
            draft.description = r.string(fields["description"][1], what) or ""
        if "domains_files" in fields:
            listed = r.sequence(fields["domains_files"][1], f"{what}: domains_files")
            for item in listed or ():
                rel = r.string(item, f"{what}: domains_files")
                if rel is not None:
                    draft.domains = _merge(draft.domains, files.read(r, item, rel))
        if "domains" in fields:
            draft.domains = _merge(draft.domains, _inline_domains(r, fields["domains"][1], what))
        if "networks" in fields:
            draft.networks.extend(_networks(r, fields["networks"][1], what))
    return out


def _inline_domains(r: NodeReader, node: Node, what: str) -> dict[str, str]:
    inline: dict[str, str] = {}
    for item in r.sequence(node, f"{what}: domains") or ():
        text = r.string(item, f"{what}: domains")
        if text is None:
            continue
        # Same spellings as in list files: "*.x.com" and ".x.com" mean x.com.
        bare = text.strip().removeprefix("*.").removeprefix(".")
        domain = domain_name(bare)
        if domain is None:
            r.err(item, f"{what}: {text!r} is not a domain name")
            continue
        inline.setdefault(domain, domain)
    return inline


def _networks(r: NodeReader, node: Node, what: str) -> list[IPNetwork]:
    out: list[IPNetwork] = []
    for item in r.sequence(node, f"{what}: networks") or ():
        text = r.string(item, f"{what}: networks")
        if text is None:
            continue
        try:
            out.append(ipaddress.ip_network(text.strip(), strict=True))
        except ValueError as e:
            r.err(item, f"{what}: bad CIDR {text!r}: {e}")
    return out


def read_blocked(
    r: NodeReader, node: Node | None, categories: dict[str, CategoryDraft] | None
) -> tuple[str, ...]:
    if node is None:
        return ()
    items = r.sequence(node, "blocked_categories")
    if items is None:
        return ()
    out: list[str] = []
    for item in items:
        name = r.string(item, "blocked_categories")
        if name is None:
            continue
        if categories is not None and name not in categories:
            r.err(item, f"blocked_categories: unknown category {name!r}{known(categories)}")
        elif name in out:
            r.err(item, f"blocked_categories: {name!r} is listed twice")
        else:
            out.append(name)
    if not items:
        r.err(node, "blocked_categories: is empty, so nothing would be blocked")
    return tuple(out)


def _merge(into: dict[str, str], entries: dict[str, str] | None) -> dict[str, str]:
    """``into`` plus the entries it lacks (earlier sources win); adopts ``entries`` when empty."""
    if not entries:
        return into
    if not into:
        return entries  # no copy: a category is usually one big list
    for domain, site in entries.items():
        into.setdefault(domain, site)
    return into
