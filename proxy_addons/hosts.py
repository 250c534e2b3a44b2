"""Host names: normalisation, suffix lookup in O(labels), IP networks.

Every name the proxy sees (CONNECT target, SNI, Host header, category list
entries, exemption sites) goes through `normalise_host` so that spellings that
reach the same server compare equal.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
# Lower-case ASCII name whose last label starts with a letter: never an IP literal.
_PLAIN_DOMAIN = re.compile(
    r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)


def _strip_port(name: str) -> str:
    if name.startswith("["):
        end = name.find("]")
        return name[1:end] if end != -1 else name[1:]
    if name.count(":") == 1:
        return name.split(":", 1)[0]
    return name


def _as_ip(name: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        pass
    labels = name.split(".")
    # Resolvers accept legacy IPv4 spellings (2130706433, 0x7f.1, 0177.0.0.1):
    # normalise them so they cannot dodge a category's networks.
    if 1 <= len(labels) <= 4 and all(_NUMERIC_LABEL.match(label) for label in labels):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    return None


@functools.lru_cache(maxsize=65_536)
def normalise_host(name: str) -> str | None:
    """Canonical form of a host name or IP literal; None if it is not a valid host.

    Lower case, port and trailing dots removed, Unicode converted to IDNA
    (punycode), IP literals in their compressed canonical form. Cached: a
    proxy sees the same few thousand names over and over.
    """
    name = _strip_port(name.strip()).rstrip(".")
    if len(name) <= 253 and _PLAIN_DOMAIN.match(name):
        return name  # already canonical, and never an IP literal
    if not name:
        return None
    if not name.isascii():
        try:
            # The codec also maps the ideographic full stops (U+3002 …) to dots.
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    name = name.lower().rstrip(".")
    ip = _as_ip(name)
    if ip is not None:
        return str(ip)
    if len(name) > 253:
        return None
    for label in name.split("."):
        if not _LABEL.match(label):
            return None
    return name


def parse_ip(name: str) -> IPAddress | None:
    """The address if ``name`` (already normalised) is an IP literal."""
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def domain_name(text: str) -> str | None:
    """The normalised domain name (not an IP literal, at least two labels), else None."""
    domain = normalise_host(text)
    if domain is None or parse_ip(domain) is not None or "." not in domain:
        return None
    return domain


class Match(NamedTuple):
    """A list entry that covers a host, and the value stored for it."""

    entry: str
    value: str


class DomainSet(Mapping[str, str]):
    """Immutable map from domain entry to a value (e.g. its site), matched by suffix.

    A host matches an entry when it equals it or is a subdomain of it. Lookup
    walks the host's labels from the full name to its last label, so the cost
    depends on the name's length, never on the number of entries.
    """

    __slots__ = ("_map",)

    def __init__(self, entries: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._map: dict[str, str] = dict(entries)

    @classmethod
    def adopt(cls, entries: dict[str, str]) -> DomainSet:
        """Take over ``entries`` without copying (a 1M-entry copy costs ~80 MB at peak).

        The caller must not keep or change the dict afterwards.
        """
        ds = cls()
        ds._map = entries
        return ds

    def match(self, host: str) -> Match | None:
        """The most specific entry covering ``host`` (normalised), or None."""
        get = self._map.get
        value = get(host)
        if value is not None:
            return Match(host, value)
        i = host.find(".")
        while i != -1:
            host = host[i + 1 :]
            value = get(host)
            if value is not None:
                return Match(host, value)
            i = host.find(".")
        return None

    def __getitem__(self, key: str) -> str:
        return self._map[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def __repr__(self) -> str:
        return f"DomainSet({len(self._map)} entries)"


class NetworkSet:
    """Immutable set of IP networks with their value; first matching network wins."""

    __slots__ = ("_nets",)

    def __init__(self, networks: Iterable[tuple[IPNetwork, str]] = ()) -> None:
        self._nets: tuple[tuple[IPNetwork, str], ...] = tuple(networks)

    def match(self, ip: IPAddress) -> Match | None:
        for net, value in self._nets:
            if ip.version == net.version and ip in net:
                return Match(str(net), value)
        return None

    def __len__(self) -> int:
        return len(self._nets)

    def __iter__(self) -> Iterator[tuple[IPNetwork, str]]:
        return iter(self._nets)


def parse_domain_lines(
    lines: Iterable[str],
) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """Parse a category list: one domain per line, ``#`` comments, ``[site]`` headers.

    A ``[site]`` header groups the domains below it (until the next header)
    under one site, so an exemption for ``x.com`` also covers ``twimg.com``
    when the list puts it under ``[x.com]``. Entries before any header are
    their own site. Returns ``(entries, errors)``: entries map domain to site,
    errors are ``(line number, message)``.
    """
    entries: dict[str, str] = {}
    errors: list[tuple[int, str]] = []
    site: str | None = None
    for lineno, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                errors.append((lineno, f"site header {line!r} lacks a closing ']'"))
                continue
            header = normalise_host(line[1:-1])
            if header is None or parse_ip(header) is not None:
                errors.append((lineno, f"site header {line!r} is not a domain name"))
                continue
            site = header
            entries.setdefault(site, site)
            continue
        if line.startswith("*."):
            line = line[2:]
        elif line.startswith("."):
            line = line[1:]
        if " " in line or "\t" in line:
            errors.append((lineno, f"{line!r}: one domain per line"))
            continue
        if _PLAIN_DOMAIN.match(line):
            # The common case, kept cheap for 1M-line lists: a dotted name whose last label
            # starts with a letter is never an IP literal.
            domain = line
        else:
            normalised = domain_name(line)
            if normalised is None:
                errors.append((lineno, f"{line!r} is not a domain name"))
                continue
            domain = normalised
        entries.setdefault(domain, site or domain)
    return entries, errors
