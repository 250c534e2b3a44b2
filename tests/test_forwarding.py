"""The client address behind a trusted load balancer (pure: follow_x_forwarded_for)."""

from __future__ import annotations

import pytest

from proxy_addons.forwarding import Refusal, forwarded_client, parse_entry, parse_trusted

BALANCER = "127.0.0.1"
TRUSTED = parse_trusted("127.0.0.1, 10.1.0.0/16, fd00::/8")


@pytest.mark.parametrize(
    ("text", "trusted", "untrusted"),
    [
        ("", [], ["127.0.0.1", "::1"]),
        ("  ", [], ["127.0.0.1"]),
        ("127.0.0.1", ["127.0.0.1", "::ffff:127.0.0.1"], ["127.0.0.2"]),
        ("10.0.0.0/8, ::1", ["10.200.3.4", "::1"], ["11.0.0.1", "::2"]),
        ("2001:db8::/32", ["2001:db8::5"], ["2001:db9::5", "not an ip"]),
    ],
)
def test_parse_trusted(text: str, trusted: list[str], untrusted: list[str]) -> None:
    """Addresses and CIDR networks, IPv4 and IPv6; empty trusts nobody."""
    proxies = parse_trusted(text)
    assert all(proxies.trusts(ip) for ip in trusted)
    assert not any(proxies.trusts(ip) for ip in untrusted)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("10.0.0.0/33", "'10.0.0.0/33'"),
        ("10.0.0.5/24", "'10.0.0.5/24'"),  # host bits set: probably a typo
        ("balancer.example", "'balancer.example'"),
        ("10.0.0.1,,10.0.0.2", "empty entry"),
        ("10.0.0.1,", "empty entry"),
        ("::ffff:10.0.0.1", "'::ffff:10.0.0.1'"),
    ],
)
def test_parse_trusted_refuses(text: str, named: str) -> None:
    """A bad entry is refused, named in the error."""
    with pytest.raises(ValueError, match=named):
        parse_trusted(text)


@pytest.mark.parametrize(
    ("entry", "address"),
    [
        ("10.0.0.9", "10.0.0.9"),
        (" 10.0.0.9 ", "10.0.0.9"),
        ("10.0.0.9:5123", "10.0.0.9"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:DB8::1]:443", "2001:db8::1"),
        ("::ffff:10.0.0.9", "10.0.0.9"),
        ("unknown", None),
        ("_hidden", None),
        ("host.example", None),
        ("10.0.0.9:http", None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]x", None),
        ("fe80::1%eth0", None),
        ("", None),
    ],
)
def test_parse_entry(entry: str, address: str | None) -> None:
    """Addresses with or without a port; anything else is not an address."""
    assert parse_entry(entry) == address


@pytest.mark.parametrize(
    ("peer", "fields", "expected"),
    [
        # from an untrusted peer the header is never read
        ("127.0.0.9", ["10.0.0.9"], ("127.0.0.9", False)),
        ("127.0.0.9", [], ("127.0.0.9", False)),
        ("127.0.0.9", ["garbage"], ("127.0.0.9", False)),
        # from the balancer: the address it added
        (BALANCER, ["10.0.0.9"], ("10.0.0.9", True)),
        ("::ffff:127.0.0.1", ["10.0.0.9"], ("10.0.0.9", True)),
        # a client's own header is left of the balancer's and never reached
        (BALANCER, ["10.9.9.9", "10.0.0.9"], ("10.0.0.9", True)),
        (BALANCER, ["10.9.9.9, 10.0.0.9"], ("10.0.0.9", True)),
        (BALANCER, ["garbage, 10.0.0.9"], ("10.0.0.9", True)),
        (BALANCER, ["unknown", "10.0.0.9"], ("10.0.0.9", True)),
        # trusted hops are walked past; all trusted: the leftmost
        (BALANCER, ["10.0.0.9, 10.1.2.3"], ("10.0.0.9", True)),
        (BALANCER, ["10.0.0.9", "10.1.2.3", "fd00::7"], ("10.0.0.9", True)),
        (BALANCER, ["10.1.0.5, 10.1.2.3"], ("10.1.0.5", True)),
        # empty list elements are ignored
        (BALANCER, ["10.0.0.9, ,"], ("10.0.0.9", True)),
        # fail closed
        (BALANCER, [], Refusal.MISSING),
        (BALANCER, [""], Refusal.EMPTY),
        (BALANCER, [" , "], Refusal.EMPTY),
        (BALANCER, ["unknown"], Refusal.UNPARSEABLE),
        (BALANCER, ["10.0.0.9, garbage"], Refusal.UNPARSEABLE),
        (BALANCER, ["10.0.0.9", "10.1.2.3, proxy.example"], Refusal.UNPARSEABLE),
    ],
)
def test_forwarded_client(
    peer: str, fields: list[str], expected: tuple[str, bool] | Refusal
) -> None:
    """Walk from the right past trusted proxies; the first untrusted address is the client."""
    assert forwarded_client(peer, fields, TRUSTED) == expected


def test_nobody_trusted_by_default() -> None:
    """With no trusted proxies, even a loopback peer's header is ignored."""
    assert forwarded_client(BALANCER, ["10.0.0.9"], parse_trusted("")) == (BALANCER, False)
