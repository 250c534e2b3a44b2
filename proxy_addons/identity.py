"""Who is asking, in plain values: the proxyauth user, or a source address the policy names.

The mitmproxy side (reading a flow's proxyauth metadata and its peer address)
is `proxy_addons.addons.identity`; this module holds what it decides with.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from proxy_addons.hosts import IPAddress
from proxy_addons.policy.model import Policy

PROXYAUTH = "proxyauth"
SOURCE_ADDRESS = "source-address"
NONE = "none"


@dataclass(frozen=True, slots=True)
class Identity:
    user: str | None
    source: str  # proxyauth | source-address | none
    groups: tuple[str, ...] = ()


ANONYMOUS = Identity(None, NONE)


@functools.lru_cache(maxsize=4096)
def canonical_ip(host: str) -> str:
    """The address as the policy and the audit trail spell it."""
    # IPv4-mapped IPv6 (::ffff:10.0.0.1) on dual-stack listeners.
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return str(mapped) if mapped is not None else str(ip)


@functools.lru_cache(maxsize=4096)
def _as_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def address_user(policy: Policy, ip: str) -> str | None:
    """The user the policy's ``identity.source_addresses`` names for ``ip`` (canonical form)."""
    if not policy.source_addresses:
        return None
    address = _as_address(ip)
    return None if address is None else policy.source_addresses.get(address)


def resolve(policy: Policy, auth_user: str | None, by_address: str | None) -> Identity:
    """The proxyauth user wins, then the source address, else nobody."""
    if auth_user:
        # The gate lets source-address hosts past proxyauth under their mapped name.
        source = SOURCE_ADDRESS if auth_user == by_address else PROXYAUTH
        return Identity(auth_user, source, policy.user_groups.get(auth_user, ()))
    if by_address is not None:
        return Identity(by_address, SOURCE_ADDRESS, policy.user_groups.get(by_address, ()))
    return ANONYMOUS
