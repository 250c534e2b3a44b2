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
import stringprep
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple
from urllib.parse import unquote

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
# Lower-case ASCII name whose last label starts with a letter: never an IP literal.
_PLAIN_DOMAIN = re.compile(
    r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)


_PORT = re.compile(r"^[0-9]{1,5}$")
# An IPv6 zone (``fe80::1%eth0``): an interface name or number, nothing else.
_ZONE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Connections to an IPv4-mapped address (``::ffff:a.b.c.d``) go to the IPv4 address; a NAT64
# gateway (well-known prefix, RFC 6052) reaches the IPv4 address embedded in the last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Characters a name's pieces are split at when it cannot be normalised: anything that is
# neither a letter, a digit, '-', '_' nor a dot (ASCII or one of the dots IDNA maps to '.').
_NOT_NAME = re.compile(r"[^\w.\-\u3002\uff0e\uff61]+")
_IDNA_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_PIECES_MAX = 64  # a name split into more pieces than this is judged on its first and last ones


def _strip_port(name: str) -> str | None:
    """The host part of ``host[:port]`` / ``[v6][:port]``; None if the port is malformed."""
    if name.startswith("["):
        end = name.find("]")
        if end == -1:
            return None
        rest = name[end + 1 :]
        if rest and not (rest.startswith(":") and _valid_port(rest[1:])):
            return None
        host = name[1:end]
        return host if ":" in host else None  # brackets hold IPv6 literals only
    if name.count(":") == 1:
        host, _, port = name.partition(":")
        return host if _valid_port(port) else None
    return name


def _valid_port(port: str) -> bool:
    return bool(_PORT.fullmatch(port)) and int(port) <= 65535


def _as_ip(name: str) -> IPAddress | None:
    if ":" in name:
        addr, pct, zone = name.partition("%")
        if pct and not _ZONE.fullmatch(zone):
            return None
        try:
            ip6 = ipaddress.IPv6Address(addr)
        except ValueError:
            return None
        # The socket layer connects an IPv4-mapped address to the IPv4 address itself.
        return ip6.ipv4_mapped or ip6
    try:
        return ipaddress.IPv4Address(name)
    except ValueError:
        pass
    labels = name.split(".")
    # Resolvers accept legacy IPv4 spellings (2130706433, 0x7f.1, 0177.0.0.1):
    # normalise them so they cannot dodge a category's networks.
    if 1 <= len(labels) <= 4 and all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    return None


@functools.lru_cache(maxsize=65_536)
def normalise_host(name: str) -> str | None:
    """Canonical form of a host name or IP literal; None if it is not a valid host.

    Lower case, port and trailing dots removed, Unicode converted to IDNA
    (punycode), IP literals in their compressed canonical form (an IPv4-mapped
    IPv6 address in its IPv4 form: a connection to it reaches the IPv4 host).
    A malformed port, an empty label, a character no host name contains (control
    characters, spaces, ``@``, ``\\``, ``%`` outside an IPv6 zone) give None. Cached: a
    proxy sees the same few thousand names over and over.
    """
    host = _strip_port(name.strip(" \t"))
    if host is None:
        return None
    host = host.rstrip(".")
    if len(host) <= 253 and _PLAIN_DOMAIN.fullmatch(host):
        return host  # already canonical, and never an IP literal
    if not host:
        return None
    if ":" in host:
        ip = _as_ip(host.lower())
        return str(ip) if ip is not None else None
    if not host.isascii():
        try:
            # The codec also maps the ideographic full stops (U+3002 …) to dots.
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    host = host.lower().rstrip(".")
    ip = _as_ip(host)
    if ip is not None:
        return str(ip)
    if len(host) > 253:
        return None
    for label in host.split("."):
        if not _LABEL.fullmatch(label):
            return None
    return host


def network_address(ip: IPAddress) -> IPAddress:
    """The address a connection to ``ip`` reaches for network matching (NAT64 → IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _label(label: str) -> str | None:
    """One label in IDNA form, or None if no host name can contain it."""
    if not label.isascii():
        try:
            label = label.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    label = label.lower()
    return label if _LABEL.fullmatch(label) else None


def _longest_valid_suffix(piece: str) -> str | None:
    """The longest label-aligned suffix of ``piece`` that is a valid host, empty labels dropped."""
    labels: list[str] = []
    size = -1
    for raw in reversed(piece.translate(_IDNA_DOTS).split(".")):
        if not raw:
            continue
        label = _label(raw)
        if label is None or size + len(label) + 1 > 253:
            break
        labels.append(label)
        size += len(label) + 1
    if not labels:
        return None
    return normalise_host(".".join(reversed(labels)))


def _drop_mapped_to_nothing(name: str) -> str:
    return "".join(c for c in name if not stringprep.in_table_b1(c))


def name_pieces(name: str) -> list[str]:
    """Valid host names found in a name that does not normalise, to judge what it might reach.

    A name that cannot be normalised is refused; these pieces tell whether it could be
    social (so the refusal is recorded). Tried: the name and its percent-decoded form, each
    also without the characters IDNA maps to nothing, and all of these also with the
    characters a host cannot contain deleted; an IPv6 literal between
    brackets; in each, every run of name characters between characters a host cannot
    contain (``@``, ``:``, spaces, control characters, ``%`` …), cut to its longest valid
    label-aligned suffix (empty labels dropped, over-long prefixes cut off).
    """
    variants = [name]
    if "%" in name:
        variants.append(unquote(name, errors="replace"))
    # IDNA maps some characters to nothing (soft hyphen, zero-width space …): drop them first.
    variants.extend(
        [_drop_mapped_to_nothing(v) for v in variants if any(map(stringprep.in_table_b1, v))]
    )
    # A server that drops the characters a name cannot contain would see the rest joined.
    variants.extend([_NOT_NAME.sub("", v) for v in variants])
    out: list[str] = []
    for v in variants:
        start = v.find("[")
        if start != -1 and (end := v.find("]", start)) != -1:
            ip = _as_ip(v[start + 1 : end].lower())
            if ip is not None:
                out.append(str(ip))
        pieces = _NOT_NAME.split(v)
        if len(pieces) > _PIECES_MAX:
            pieces = pieces[: _PIECES_MAX // 2] + pieces[-_PIECES_MAX // 2 :]
        for piece in pieces:
            host = _longest_valid_suffix(piece)
            if host is not None and host not in out:
                out.append(host)
    return out


def printable(name: str, limit: int = 300) -> str:
    """``name`` with control characters escaped and cut to ``limit`` (for records)."""
    text = name.encode("unicode_escape").decode("ascii") if not name.isprintable() else name
    if len(text) > limit:
        return f"{text[:limit]}…[{len(name)} chars]"
    return text


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
        if _PLAIN_DOMAIN.fullmatch(line):
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
