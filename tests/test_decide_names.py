"""Names at the decision level (issue 10, classes 1-3): normalisation, pieces, steering names."""

from __future__ import annotations

import pytest

from proxy_addons.decide import Outcome, Reason, decide, normalise_names
from proxy_addons.flownames import raw_sni, request_names
from proxy_addons.hosts import name_pieces, normalise_host, printable
from proxy_addons.policy.model import Policy
from tests.support.client import client_hello
from tests.support.policy_texts import NAMES_NOON as NOON
from tests.support.policy_texts import names_policy


@pytest.fixture(scope="module")
def policy() -> Policy:
    return names_policy()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # well-formed ports are removed
        ("facebook.com:0", "facebook.com"),
        ("facebook.com:65535", "facebook.com"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        # malformed ports: not a host
        ("facebook.com:80x", None),
        ("facebook.com:", None),
        ("facebook.com:99999", None),
        ("facebook.com:+80", None),
        ("facebook.com:８０", None),
        ("facebook.com: 80", None),
        ("[2001:db8::1]x", None),
        ("[2001:db8::1]:", None),
        ("[facebook.com]", None),
        ("[2001:db8::1", None),
        # control characters, NUL, whitespace a header parser does not strip
        ("facebook.com\x00", None),
        ("face\x00book.com", None),
        ("facebook.com\n", None),
        ("facebook.com\x1f", None),
        ("facebook.com\x7f", None),
        # spaces, userinfo, backslash, percent-encoding, slashes
        ("face book.com", None),
        ("user@facebook.com", None),
        ("evil\\facebook.com", None),
        ("facebook%2ecom", None),
        ("facebook.com/", None),
        # empty labels and over-long names
        ("facebook..com", None),
        (".facebook.com", None),
        ("a" * 254, None),
        ("a" * 64 + ".facebook.com", None),
        # IPv6 zones: an interface name only
        ("fe80::1%eth0", "fe80::1"),
        ("fe80::1%eth 0", None),
        ("fe80::1%", None),
    ],
)
def test_normalise_host_refuses_what_is_not_a_host(raw: str, expected: str | None) -> None:
    """Malformed ports and characters no host contains give None, not a lower-cased string."""
    assert normalise_host(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # IPv4-mapped IPv6 connects to the IPv4 address: its IPv4 form
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("[::ffff:192.0.2.1]", "192.0.2.1"),
        ("[::ffff:c000:201]:443", "192.0.2.1"),
        ("0:0:0:0:0:FFFF:C000:0201", "192.0.2.1"),
        ("::ffff:0:c000:201", "::ffff:0:c000:201"),  # IPv4-translated: a different address
        # IPv4-compatible and NAT64 stay IPv6 (a socket connects to them over IPv6)
        ("::192.0.2.1", "::c000:201"),
        ("64:ff9b::192.0.2.1", "64:ff9b::c000:201"),
        # legacy IPv4 spellings
        ("3221225985", "192.0.2.1"),
        ("0xc0.0.2.1", "192.0.2.1"),
        ("0300.0.2.1", "192.0.2.1"),
        ("192.0.513", "192.0.2.1"),
    ],
)
def test_normalise_ip_spellings(raw: str, expected: str) -> None:
    """IP literal spellings that connect to the same address normalise to one form."""
    assert normalise_host(raw) == expected


@pytest.mark.parametrize(
    ("raw", "piece"),
    [
        # the part before a bad port, around a NUL or control character
        ("www.facebook.com:80x", "www.facebook.com"),
        ("www.facebook.com\x00.example.org", "www.facebook.com"),
        ("www.face\x7fbook.com", "www.facebook.com"),
        # around userinfo, spaces, backslashes; percent-decoded
        ("user@www.facebook.com", "www.facebook.com"),
        ("example.org www.facebook.com", "www.facebook.com"),
        ("evil\\www.facebook.com", "www.facebook.com"),
        ("www%2efacebook%2ecom", "www.facebook.com"),
        # empty labels dropped, over-long prefixes cut off
        ("www.facebook..com", "www.facebook.com"),
        ("a" * 300 + ".facebook.com", "facebook.com"),
        ("x." * 200 + "facebook.com", "facebook.com"),
        # an IPv6 literal between brackets
        ("[::ffff:192.0.2.1]junk", "192.0.2.1"),
    ],
)
def test_name_pieces_find_the_social_name(raw: str, piece: str) -> None:
    """The pieces of an unparseable name include every host it might reach."""
    assert normalise_host(raw) is None
    assert any(p == piece or p.endswith("." + piece) for p in name_pieces(raw))


def test_name_pieces_of_a_huge_name_stay_bounded() -> None:
    """A 100 KB name of separators is split in bounded time and keeps its ends."""
    raw = "a@" * 50_000 + "www.facebook.com"
    assert "www.facebook.com" in name_pieces(raw)


def test_printable_escapes_and_truncates() -> None:
    """Names kept for a record are printable and bounded, with the original length."""
    assert printable("a\x00b") == "a\\x00b"
    assert printable("a" * 1000, limit=10) == "a" * 10 + "…[1000 chars]"


# -- decide(): a name that cannot be normalised is never "not social" ---------------------


@pytest.mark.parametrize(
    ("user", "names", "outcome", "host"),
    [
        # something social in the unparseable name: blocked as social, whoever asks
        ("carol", ["www.example.org", "www.facebook.com:80x"], Outcome.BLOCKED, "www.facebook.com"),
        ("alice", ["x.com", "x.com:"], Outcome.BLOCKED, "x.com"),
        ("alice", ["x.com\x00"], Outcome.BLOCKED, "x.com"),
        ("carol", ["192.0.2.1\x00"], Outcome.BLOCKED, "192.0.2.1"),
        # another name of the flow is social: blocked as social
        ("alice", ["x.com", "www.exa\x00mple.org"], Outcome.BLOCKED, "x.com"),
        # nothing social anywhere: refused, not recorded
        ("carol", ["www.example.org", "www.example.org:80x"], Outcome.INVALID, ""),
        ("carol", ["www.exa\x00mple.org"], Outcome.INVALID, ""),
        (None, ["a b"], Outcome.INVALID, ""),
    ],
)
def test_unparseable_name_is_refused(
    policy: Policy, user: str | None, names: list[str], outcome: Outcome, host: str
) -> None:
    """Any unparseable name refuses the flow as invalid-name; social if anything in it is."""
    d = decide(policy, user, names, "GET", NOON)
    assert (d.outcome, d.reason, d.host) == (outcome, Reason.INVALID_NAME, host)
    assert not d.allowed
    assert d.invalid == (outcome is Outcome.INVALID)
    assert d.social == (outcome is Outcome.BLOCKED)


def test_invalid_name_is_kept_printable_in_names(policy: Policy) -> None:
    """The record's names list shows the raw name, escaped."""
    d = decide(policy, "carol", ["www.facebook.com\x00"], "GET", NOON)
    assert d.names == ("www.facebook.com\\x00",)
    assert normalise_names(["X.com", "a\x01"]) == ("x.com", "a\\x01")


# -- decide(): every name, and the union -----------------------------------------------------


@pytest.mark.parametrize(
    ("user", "names", "outcome", "reason"),
    [
        # repeated Host headers: one social is enough; identical ones are one name
        ("carol", ["www.example.org", "www.facebook.com"], Outcome.BLOCKED, Reason.NO_EXEMPTION),
        ("carol", ["www.example.org", "www.example.org"], Outcome.NOT_SOCIAL, Reason.NOT_SOCIAL),
        ("alice", ["x.com", "X.COM.", "x.com:443"], Outcome.ALLOWED, Reason.EXEMPTION),
        # an exempt site's tunnel naming another social or a non-social site
        ("alice", ["x.com", "www.facebook.com"], Outcome.BLOCKED, Reason.NO_EXEMPTION),
        ("alice", ["x.com", "www.example.org"], Outcome.BLOCKED, Reason.NAME_MISMATCH),
        # IPv4-mapped and NAT64 spellings of a listed network
        ("carol", ["::ffff:192.0.2.9"], Outcome.BLOCKED, Reason.NO_EXEMPTION),
        ("carol", ["[::ffff:c000:209]:80"], Outcome.BLOCKED, Reason.NO_EXEMPTION),
        ("carol", ["64:ff9b::c000:209"], Outcome.BLOCKED, Reason.NO_EXEMPTION),
        ("carol", ["::c000:209"], Outcome.NOT_SOCIAL, Reason.NOT_SOCIAL),
    ],
)
def test_decide_on_the_union(
    policy: Policy, user: str, names: list[str], outcome: Outcome, reason: Reason
) -> None:
    """The flow is decided on every name it carries."""
    d = decide(policy, user, names, "GET", NOON)
    assert (d.outcome, d.reason) == (outcome, reason)


# -- which names steer a request -------------------------------------------------------------


def test_request_names_collects_every_steering_name() -> None:
    """CONNECT target, SNI, raw SNI names, request host, authority and each Host header."""
    names = request_names(
        connect_host="x.com",
        sni=None,
        sni_names=["www.facebook.com\\x00"],
        request_host="x.com",
        authority="www.facebook.com",
        host_headers=["x.com", "m.facebook.com"],
    )
    assert names == [
        "x.com",
        None,
        "www.facebook.com\\x00",
        "x.com",
        "www.facebook.com",
        "x.com",
        "m.facebook.com",
    ]


@pytest.mark.parametrize(
    ("sni", "expected"),
    [
        (b"www.facebook.com", ["www.facebook.com"]),
        (b"www.facebook\x00com", ["www.facebook\x00com"]),
        (b"www.f\xe4cebook.com", ["www.f\\xe4cebook.com"]),
    ],
)
def test_raw_sni_reads_the_names_sent(sni: bytes, expected: list[str]) -> None:
    """The SNI extension's names come back as sent, non-ASCII bytes escaped (never IDNA'd)."""
    hello = client_hello(sni)[5 + 4 :]  # record header, handshake header
    assert raw_sni(hello) == expected


@pytest.mark.parametrize("junk", [b"", b"\x03\x03", b"\x03\x03" + b"\x00" * 32 + b"\xff"])
def test_raw_sni_of_a_broken_hello_is_empty(junk: bytes) -> None:
    """A ClientHello that cannot be parsed has no names (mitmproxy refuses it anyway)."""
    assert raw_sni(junk) == []
