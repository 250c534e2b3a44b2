"""Bypass attempts through names (issue 10, classes 1-3), against upstreams that record raw bytes.

Every attempt asserts what reached the wire (nothing, for a refused attempt), the status the
client saw and the audit record (or that there is none: non-social traffic is never recorded).
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest

from tests.support.client import client_hello, connect_tunnel, proxy_auth, read_all, ref_of, status
from tests.support.policies import PASSWORD
from tests.support.proxy import Proxy
from tests.support.wire import WireServers

pytestmark = pytest.mark.integration

LONG = "a" * 300 + ".www.facebook.com"


def plain(proxy: Proxy, target: str, hosts: list[bytes], user: str = "carol") -> bytes:
    """One HTTP/1.1 request sent to the proxy as it is, with the given Host header lines."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    head = f"GET {target} HTTP/1.1\r\n{proxy_auth(user)}".encode()
    head += b"".join(b"Host: " + h + b"\r\n" for h in hosts)
    sock.sendall(head + b"Accept: */*\r\nConnection: close\r\n\r\n")
    data = read_all(sock)
    sock.close()
    return data


def in_tunnel(
    proxy: Proxy,
    connect: str,
    target: str,
    hosts: list[bytes],
    *,
    user: str = "carol",
    sni: str | None = None,
) -> bytes:
    """CONNECT, optionally TLS (trusting the proxy's CA), then one raw request inside."""
    sock, resp = connect_tunnel(proxy.port, connect, user, PASSWORD)
    assert b" 200 " in resp.split(b"\r\n", 1)[0], resp
    conn: socket.socket | ssl.SSLSocket = sock
    if sni is not None:
        ctx = ssl.create_default_context(cafile=str(proxy.ca))
        ctx.check_hostname = False
        conn = ctx.wrap_socket(sock, server_hostname=sni)
    head = f"GET {target} HTTP/1.1\r\n".encode()
    head += b"".join(b"Host: " + h + b"\r\n" for h in hosts)
    conn.sendall(head + b"Accept: */*\r\nConnection: close\r\n\r\n")
    data = read_all(conn)
    conn.close()
    return data


def blocked_record(proxy: Proxy, raw: bytes, reason: str) -> dict[str, Any]:
    """The 403 the client saw, and its record: blocked, with ``reason``, status 403."""
    assert status(raw) == 403, raw[:300]
    rec = proxy.record(ref_of(raw))
    assert rec["event"]["outcome"] == "failure"
    assert rec["socialgate"]["outcome"] == "blocked"
    assert rec["socialgate"]["reason"] == reason
    assert rec["http"]["response"]["status_code"] == 403
    return rec


def nothing_arrived(wire: WireServers) -> None:
    assert wire.settle() == b""
    assert wire.http.connections() == 0
    assert wire.https.connections() == 0


# -- class 1: a Host that cannot be normalised, with something social in it ---------------


@pytest.mark.parametrize(
    "host",
    [
        # malformed ports
        b"www.facebook.com:80x",
        b"www.facebook.com:",
        b"www.facebook.com:99999",
        b"www.facebook.com:+80",
        # control characters, NUL
        b"www.facebook.com\x00.example.org",
        b"www.facebook.com\x01",
        b"www.face\x7fbook.com",
        # spaces, userinfo, backslash, percent-encoding
        b"www.facebook.com evil",
        b"user@www.facebook.com",
        b"www.facebook.com\\evil",
        b"www%2efacebook.com",
        # empty labels, over-long names, trailing junk
        b"www.facebook..com",
        LONG.encode(),
        b"www.facebook.com/junk",
        b"[::ffff:192.0.2.1]junk",
    ],
)
def test_social_unparseable_host_is_blocked_and_recorded(
    wire_proxy: Proxy, wire: WireServers, host: bytes
) -> None:
    """A Host with something social in it that cannot be normalised: 403, recorded."""
    wire.clear()
    raw = plain(wire_proxy, "http://www.example.org/", [host])
    nothing_arrived(wire)
    rec = blocked_record(wire_proxy, raw, "invalid-name")
    assert rec["socialgate"]["category"] == "social_networking"
    assert "www.example.org" in rec["socialgate"]["names"]
    assert len(rec["socialgate"]["names"]) == 2


@pytest.mark.parametrize(
    "host",
    [b"www.example.org:80x", b"www.exa\x00mple.org", b"www.example..org", b"a b.example.org"],
)
def test_non_social_unparseable_host_is_refused_unrecorded(
    wire_proxy: Proxy, wire: WireServers, host: bytes
) -> None:
    """A Host that cannot be normalised and holds nothing social: 400, no record."""
    before = len(wire_proxy.access_records())
    wire.clear()
    raw = plain(wire_proxy, "http://www.example.org/", [host])
    nothing_arrived(wire)
    assert status(raw) == 400
    assert len(wire_proxy.access_records()) == before


@pytest.mark.parametrize(
    "target",
    [
        "http://www.facebook.com:80x/",
        "http://www.facebook.com:99999/",
        "http://www.face%62ook.com/",
        "http://www.facebook..com/",
    ],
)
def test_unparseable_request_target_is_refused_by_mitmproxy(
    wire_proxy: Proxy, wire: WireServers, target: str
) -> None:
    """mitmproxy itself rejects a malformed absolute-form target before any hook: no bytes out."""
    wire.clear()
    raw = plain(wire_proxy, target, [b"www.example.org"])
    nothing_arrived(wire)
    assert status(raw) in (400, 403)


@pytest.mark.parametrize("target", ["www.facebook.com:99999", "www.facebook.com:80x"])
def test_unparseable_connect_target_is_refused_by_mitmproxy(
    wire_proxy: Proxy, wire: WireServers, target: str
) -> None:
    """A CONNECT with a malformed authority never opens a tunnel."""
    wire.clear()
    sock, resp = connect_tunnel(wire_proxy.port, target, "carol", PASSWORD)
    sock.close()
    nothing_arrived(wire)
    assert b" 200 " not in resp.split(b"\r\n", 1)[0]


def test_unparseable_host_inside_a_plain_tunnel(wire_proxy: Proxy, wire: WireServers) -> None:
    """Inside a CONNECT tunnel to an innocent host:80, a malformed social Host is refused."""
    wire.clear()
    raw = in_tunnel(wire_proxy, "www.example.org:80", "/", [b"www.facebook.com:80x"])
    nothing_arrived(wire)
    rec = blocked_record(wire_proxy, raw, "invalid-name")
    assert rec["url"]["domain"] == "www.facebook.com"


@pytest.mark.parametrize(
    ("sni", "reason"),
    [
        (b"www.facebook.com\x00", "invalid-name"),
        (b"www.face\x01book.com", "invalid-name"),
        # mitmproxy rejects it; as a name it is www.facebook.com with a port
        (b"www.facebook.com:1", "no-exemption"),
        (b"www.exa\x01ple.org", None),
    ],
)
def test_invalid_sni_in_an_innocent_tunnel_is_not_passed_through(
    wire_proxy: Proxy, wire: WireServers, sni: bytes, reason: str | None
) -> None:
    """An SNI mitmproxy cannot parse (it reports none) is judged raw: never passed through."""
    hello = client_hello(sni)
    before = len(wire_proxy.access_records())
    wire.clear()
    sock, resp = connect_tunnel(wire_proxy.port, "www.example.org:443", "carol", PASSWORD)
    assert b" 200 " in resp.split(b"\r\n", 1)[0]
    sock.sendall(hello)
    sock.settimeout(2)
    read_all(sock)
    sock.close()
    nothing_arrived(wire)
    recs = wire_proxy.wait_for_records(before + 1, timeout=0.5 if reason is None else 5)
    if reason is None:
        assert len(recs) == before
        return
    rec = recs[-1]
    assert rec["socialgate"]["reason"] == reason
    assert rec["socialgate"]["stage"] == "tls"
    assert rec["url"]["domain"] == "www.facebook.com"


# -- class 2: every name that steers the request is judged ---------------------------------


@pytest.mark.parametrize(
    "hosts",
    [
        [b"www.example.org", b"www.facebook.com"],
        [b"www.facebook.com", b"www.example.org"],
    ],
)
def test_repeated_host_headers_each_judged(
    wire_proxy: Proxy, wire: WireServers, hosts: list[bytes]
) -> None:
    """Two Host headers, one social: blocked whichever comes first, both names on record."""
    wire.clear()
    raw = plain(wire_proxy, "http://www.example.org/", hosts)
    nothing_arrived(wire)
    rec = blocked_record(wire_proxy, raw, "no-exemption")
    assert set(rec["socialgate"]["names"]) == {"www.example.org", "www.facebook.com"}
    assert rec["socialgate"]["name_mismatch"] is True


def test_repeated_identical_host_headers_pass(wire_proxy: Proxy, wire: WireServers) -> None:
    """Two identical non-social Host headers are one name: the request goes, unrecorded."""
    before = len(wire_proxy.access_records())
    wire.clear()
    raw = plain(wire_proxy, "http://www.example.org/", [b"www.example.org", b"www.example.org"])
    assert status(raw) == 200
    assert wire.http.settle().startswith(b"GET / HTTP/1.1\r\n")
    assert len(wire_proxy.access_records()) == before


@pytest.mark.parametrize(
    ("target", "host"),
    [
        ("http://www.facebook.com/", b"www.example.org"),
        ("https://www.facebook.com/", b"www.example.org"),
        ("http://192.0.2.1/", b"www.example.org"),
    ],
)
def test_absolute_form_inside_an_innocent_tunnel(
    wire_proxy: Proxy, wire: WireServers, target: str, host: bytes
) -> None:
    """CONNECT to an innocent host:80, then an absolute-form social target: blocked."""
    wire.clear()
    raw = in_tunnel(wire_proxy, "www.example.org:80", target, [host])
    nothing_arrived(wire)
    rec = blocked_record(wire_proxy, raw, "no-exemption")
    assert rec["socialgate"]["name_mismatch"] is True


@pytest.mark.parametrize(
    ("target", "hosts", "reason"),
    [
        # another social site alice has no exemption for
        ("https://www.facebook.com/", [b"x.com"], "no-exemption"),
        ("/", [b"x.com", b"www.facebook.com"], "no-exemption"),
        # a non-social name the exemption cannot vouch for (fronting)
        ("https://www.example.org/", [b"x.com"], "name-mismatch"),
        ("/", [b"x.com", b"www.example.org"], "name-mismatch"),
    ],
)
def test_other_names_inside_an_exempt_tunnel(
    wire_proxy: Proxy, wire: WireServers, target: str, hosts: list[bytes], reason: str
) -> None:
    """Inside alice's intercepted x.com tunnel, any other name the request carries is judged."""
    wire.clear()
    raw = in_tunnel(wire_proxy, "x.com:443", target, hosts, user="alice", sni="x.com")
    nothing_arrived(wire)
    rec = blocked_record(wire_proxy, raw, reason)
    assert rec["user"]["name"] == "alice"
    assert rec["socialgate"]["name_mismatch"] is True


def test_exempt_tunnel_with_one_name_still_works(wire_proxy: Proxy, wire: WireServers) -> None:
    """The same tunnel with one name throughout is allowed and recorded (no false alarm)."""
    wire.clear()
    raw = in_tunnel(wire_proxy, "x.com:443", "/", [b"x.com"], user="alice", sni="x.com")
    assert status(raw) == 200
    assert wire.https.settle().startswith(b"GET / HTTP/1.1\r\n")
    recs = [r for r in wire_proxy.access_records() if r["socialgate"]["outcome"] == "allowed"]
    assert recs[-1]["socialgate"]["names"] == ["x.com"]


# -- class 3: IP literal spellings that connect to a listed IPv4 network -------------------


@pytest.mark.parametrize(
    ("target", "domain"),
    [
        ("http://[::ffff:192.0.2.1]/", "192.0.2.1"),
        ("http://[::ffff:c000:201]/", "192.0.2.1"),
        ("http://[0:0:0:0:0:ffff:192.0.2.1]/", "192.0.2.1"),
        ("http://[::FFFF:C000:0201]:8080/", "192.0.2.1"),
        ("http://[64:ff9b::192.0.2.1]/", "64:ff9b::c000:201"),
        # legacy IPv4 spellings (already handled: kept green)
        ("http://3221225985/", "192.0.2.1"),
        ("http://0xc0.0.2.1/", "192.0.2.1"),
        ("http://0300.0.2.1/", "192.0.2.1"),
    ],
)
def test_ip_spellings_of_a_listed_network(
    wire_proxy: Proxy, wire: WireServers, target: str, domain: str
) -> None:
    """Every spelling that connects to an address in the category's networks is social."""
    wire.clear()
    raw = plain(wire_proxy, target, [target.split("/")[2].encode()])
    nothing_arrived(wire)
    rec = blocked_record(wire_proxy, raw, "no-exemption")
    assert rec["url"]["domain"] == domain


def test_mapped_ipv6_host_header_on_an_innocent_target(
    wire_proxy: Proxy, wire: WireServers
) -> None:
    """A Host header spelling a listed IPv4 as IPv4-mapped IPv6 is social."""
    wire.clear()
    raw = plain(wire_proxy, "http://www.example.org/", [b"[::ffff:192.0.2.1]"])
    nothing_arrived(wire)
    rec = blocked_record(wire_proxy, raw, "no-exemption")
    assert rec["url"]["domain"] == "192.0.2.1"


def test_mapped_ipv6_connect_target_is_social(wire_proxy: Proxy, wire: WireServers) -> None:
    """CONNECT to a mapped spelling of a listed IPv4: intercepted and blocked, nothing sent."""
    wire.clear()
    raw = in_tunnel(
        wire_proxy, "[::ffff:c000:201]:443", "/", [b"[::ffff:c000:201]"], sni="192.0.2.1"
    )
    nothing_arrived(wire)
    rec = blocked_record(wire_proxy, raw, "no-exemption")
    assert rec["url"]["domain"] == "192.0.2.1"
