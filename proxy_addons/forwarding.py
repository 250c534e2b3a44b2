"""The real client address behind a load balancer, the way Squid's follow_x_forwarded_for finds it.

Only a connection whose TCP peer is one of the configured trusted proxies has its
``X-Forwarded-For`` believed. Its entries are walked from the right (the one the
nearest proxy added) past addresses that are themselves trusted proxies; the first
untrusted address is the client. Whatever a client wrote further left is never
reached, so a client cannot claim another address. Several header fields are one
list, in order (RFC 9110 section 5.3): a balancer that appends its own field after
the client's (HAProxy ``option forwardfor``) is read correctly.

Fail closed: from a trusted peer, a missing or empty header, or an entry the walk
reaches that is not an IP address, is a `Refusal`, never "the balancer's address".
``Forwarded`` (RFC 7239) and ``X-Real-IP`` are never believed. Pure: no mitmproxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from proxy_addons.identity import canonical_ip

# Headers that claim a client address: never believed from a client, never sent upstream
# (a site, or a next proxy that trusts us, must not read a spoofed or internal address).
ADDRESS_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Refusal(StrEnum):
    """Why a trusted proxy's request cannot be attributed to a client."""

    MISSING = "missing"  # no X-Forwarded-For at all
    EMPTY = "empty"  # present, but no entry in it
    UNPARSEABLE = "unparseable"  # the walk reached an entry that is not an IP address


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The balancers whose X-Forwarded-For is believed (none: trust nobody)."""

    networks: tuple[Network, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, ip: str) -> bool:
        if not self.networks:
            return False
        try:
            address = ipaddress.ip_address(canonical_ip(ip))
        except ValueError:
            return False
        return any(address in n for n in self.networks)


def parse_trusted(text: str) -> TrustedProxies:
    """``10.0.0.5, 10.1.0.0/24, fd00::/8`` → `TrustedProxies`; ValueError names the bad entry."""
    if not text.strip():
        return TrustedProxies()
    networks: list[Network] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            raise ValueError(f"empty entry in {text!r}")
        try:
            network = ipaddress.ip_network(entry, strict=True)
        except ValueError as e:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network ({e})") from None
        mapped = getattr(network.network_address, "ipv4_mapped", None)
        if mapped is not None:
            raise ValueError(f"{entry!r}: write IPv4-mapped addresses as IPv4")
        networks.append(network)
    return TrustedProxies(tuple(networks))


def parse_entry(entry: str) -> str | None:
    """One X-Forwarded-For element as a canonical address, or None if it is not one.

    Accepts ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``, ``[2001:db8::1]`` and
    ``[2001:db8::1]:5678`` (some proxies add the port); nothing else (``unknown``,
    obfuscated identifiers, host names).
    """
    text = entry.strip()
    if text.startswith("["):
        inner, sep, rest = text[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        text = inner
    elif text.count(":") == 1:  # IPv4 with a port
        host, _, port = text.partition(":")
        if not port.isdigit():
            return None
        text = host
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return None
    return canonical_ip(str(address))


def forwarded_client(
    peer: str, fields: Sequence[str], trusted: TrustedProxies
) -> tuple[str, bool] | Refusal:
    """(the client's address, whether it came from X-Forwarded-For), or why it cannot be told.

    ``peer`` is the TCP peer's address; ``fields`` every X-Forwarded-For field, in order.
    """
    if not trusted.trusts(peer):
        return peer, False
    if not fields:
        return Refusal.MISSING
    # Empty list elements ("a, , b") are ignored, as RFC 9110 asks of list recipients.
    entries = [e for field in fields for e in (x.strip() for x in field.split(",")) if e]
    if not entries:
        return Refusal.EMPTY
    address = ""
    for entry in reversed(entries):
        parsed = parse_entry(entry)
        if parsed is None:
            return Refusal.UNPARSEABLE
        address = parsed
        if not trusted.trusts(parsed):
            return address, True
    # Every hop is a trusted proxy: the leftmost is the client (as Squid takes it).
    return address, True
