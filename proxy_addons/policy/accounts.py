"""Who the policy names: the ``users`` list, ``groups`` and ``identity.source_addresses``."""

from __future__ import annotations

import ipaddress

from yaml.nodes import Node

from proxy_addons.hosts import IPAddress
from proxy_addons.policy.nodes import NodeReader
from proxy_addons.policy.schema import ACCOUNT_NAME, IDENTITY_KEYS


def read_users(r: NodeReader, node: Node | None) -> set[str] | None:
    """The declared users; None when the policy does not restrict names to a list."""
    if node is None:
        return None
    listed = r.names(node, "users")
    return {u for _, u in listed} if listed is not None else None


def read_identity(r: NodeReader, node: Node | None) -> dict[IPAddress, str]:
    out: dict[IPAddress, str] = {}
    if node is None:
        return out
    fields = r.mapping(node, "identity", IDENTITY_KEYS)
    if fields is None or "source_addresses" not in fields:
        return out
    what = "identity.source_addresses"
    spec = r.mapping(fields["source_addresses"][1], what, None, raw_keys=True)
    for text, (key, value) in (spec or {}).items():
        user = r.name(value, f"{what}: {text}")
        try:
            ip = ipaddress.ip_address(text.strip())
        except ValueError:
            hint = " (a single address, not a network)" if "/" in text else ""
            r.err(key, f"{what}: bad source address {text!r}{hint}")
            continue
        if ip in out:
            r.err(key, f"{what}: {text!r} is listed twice (as {ip})")
            continue
        if user is not None:
            out[ip] = user
    return out


def read_groups(
    r: NodeReader, node: Node | None, known: set[str] | None
) -> dict[str, frozenset[str]]:
    """Groups by name; with ``known``, every member must be one of those users."""
    out: dict[str, frozenset[str]] = {}
    if node is None:
        return out
    spec = r.mapping(node, "groups", None)
    for name, (key, value) in (spec or {}).items():
        what = f"group {name}"
        if not ACCOUNT_NAME.match(name):
            r.err(key, f"{what}: {name!r} is not a valid group name")
            continue
        members = r.names(value, what)
        if members is None:
            continue
        for item, member in members:
            if known is not None and member not in known:
                r.err(item, f"{what}: unknown user {member!r} (not in users)")
        out[name] = frozenset(m for _, m in members)
    return out
