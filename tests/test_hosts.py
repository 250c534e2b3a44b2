"""Host normalisation and suffix matching."""

from __future__ import annotations

import ipaddress

import pytest

from proxy_addons.hosts import DomainSet, NetworkSet, normalise_host, parse_domain_lines


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # case, trailing dot, port
        ("WWW.Facebook.COM.", "www.facebook.com"),
        ("m.facebook.com:443", "m.facebook.com"),
        ("facebook.com..", "facebook.com"),
        ("  x.com  ", "x.com"),
        # Unicode names become punycode; ideographic full stops are dots
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("facebook。com", "facebook.com"),
        ("ｆａｃｅｂｏｏｋ.com", "facebook.com"),
        # IP literals in canonical form, including legacy IPv4 spellings resolvers accept
        ("192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:8080", "192.0.2.1"),
        ("[2001:DB8::1]:443", "2001:db8::1"),
        ("2001:0db8:0000::0001", "2001:db8::1"),
        ("3221225985", "192.0.2.1"),
        ("0xc0.0.2.1", "192.0.2.1"),
        ("0300.0.2.1", "192.0.2.1"),
        # not host names
        ("", None),
        ("exa mple.com", None),
        ("-bad.example", None),
        ("a" * 64 + ".example", None),
        ("under_score.example", "under_score.example"),
    ],
)
def test_normalise_host(raw: str, expected: str | None) -> None:
    """Spellings that reach the same server normalise to the same name."""
    assert normalise_host(raw) == expected


SET = DomainSet({"facebook.com": "facebook.com", "fbcdn.net": "facebook.com", "t.co": "x.com"})


@pytest.mark.parametrize(
    ("host", "entry"),
    [
        # the name itself and every subdomain match
        ("facebook.com", "facebook.com"),
        ("www.facebook.com", "facebook.com"),
        ("a.b.c.facebook.com", "facebook.com"),
        ("scontent.xx.fbcdn.net", "fbcdn.net"),
        ("t.co", "t.co"),
        # look-alikes do not
        ("notfacebook.com", None),
        ("facebook.com.evil.example", None),
        ("facebookcom", None),
        ("com", None),
        ("co", None),
        ("fbcdn.net.example", None),
        ("xt.co", None),
    ],
)
def test_domainset_match(host: str, entry: str | None) -> None:
    """A host matches an entry only when it is the entry or a subdomain of it."""
    m = SET.match(host)
    assert (m.entry if m else None) == entry


def test_domainset_reports_site_value() -> None:
    """The value stored for the entry (its site) comes back with the match."""
    m = SET.match("pbs.t.co")
    assert m is not None
    assert m.value == "x.com"


def test_networkset_match() -> None:
    """IP literals match the CIDRs of a category, of the same IP version only."""
    nets = NetworkSet(
        [
            (ipaddress.ip_network("157.240.0.0/16"), "facebook"),
            (ipaddress.ip_network("2a03:2880::/32"), "facebook6"),
        ]
    )
    m = nets.match(ipaddress.ip_address("157.240.1.35"))
    assert m is not None
    assert m.value == "facebook"
    assert nets.match(ipaddress.ip_address("157.241.1.35")) is None
    m6 = nets.match(ipaddress.ip_address("2a03:2880:f003::1"))
    assert m6 is not None
    assert m6.value == "facebook6"


def test_parse_domain_lines_sites_and_comments() -> None:
    """[site] headers group domains; comments and blanks are ignored; lines are numbered."""
    text = """# Meta
[facebook.com]
fbcdn.net   # images
*.fb.me

standalone.example
Bücher.example
[x.com]
twimg.com
"""
    entries, errors = parse_domain_lines(text.splitlines())
    assert errors == []
    assert entries == {
        "facebook.com": "facebook.com",
        "fbcdn.net": "facebook.com",
        "fb.me": "facebook.com",
        "standalone.example": "facebook.com",
        "xn--bcher-kva.example": "facebook.com",
        "x.com": "x.com",
        "twimg.com": "x.com",
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("two domains.example", "one domain per line"),
        ("192.0.2.1", "is not a domain name"),
        ("nodot", "is not a domain name"),
        ("bad..example", "is not a domain name"),
        ("[unclosed.example", "lacks a closing"),
        ("[not a site]", "is not a domain name"),
    ],
)
def test_parse_domain_lines_errors(line: str, message: str) -> None:
    """Bad list lines are reported with their line number."""
    _, errors = parse_domain_lines(["ok.example", line])
    assert len(errors) == 1
    assert errors[0][0] == 2
    assert message in errors[0][1]
