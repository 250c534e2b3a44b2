"""The client address behind a trusted balancer, on a real mitmdump (raw-bytes upstreams).

The proxy trusts 127.0.0.1 as its load balancer; "clients" connect from 127.0.0.2 (the
kiosk the policy names by address) and 127.0.0.3. What the upstream receives is read off
the wire: no address header ever reaches it.
"""

from __future__ import annotations

import pathlib
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.client import proxy_auth, ref_of, status
from tests.support.policies import KIOSK_IP
from tests.support.proxy import Proxy, authenticating_proxy
from tests.support.rawclient import read_until_closed
from tests.support.wire import WireServers

pytestmark = pytest.mark.integration

BALANCER = "127.0.0.1"
OTHER = "127.0.0.3"
ADDRESS_HEADERS = (b"x-forwarded-for", b"forwarded:", b"x-real-ip")


@pytest.fixture(scope="module")
def fwd_proxy(
    tmp_path_factory: pytest.TempPathFactory, policy_dir: pathlib.Path, wire: WireServers
) -> Iterator[Proxy]:
    """A real mitmdump that trusts 127.0.0.1's X-Forwarded-For, in front of `wire`."""
    workdir = tmp_path_factory.mktemp("fwd-proxy")
    p = authenticating_proxy(
        workdir,
        policy_dir,
        wire.http.port,
        wire.https.port,
        "--set",
        f"socialgate_trusted_proxies={BALANCER}",
    )
    yield p
    p.stop()


def send(proxy: Proxy, source: str, head: str) -> bytes:
    """One request head from ``source``; the raw response (until the proxy closes)."""
    sock = socket.create_connection(
        ("127.0.0.1", proxy.port), timeout=10, source_address=(source, 0)
    )
    sock.sendall(head.encode())
    data, _ = read_until_closed(sock, timeout=5)
    sock.close()
    return data


def plain(host: str, headers: str = "") -> str:
    return (
        f"GET http://{host}/page HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n"
        f"{headers}Connection: close\r\n\r\n"
    )


def spoofs() -> str:
    return "Forwarded: for=10.9.9.9\r\nX-Real-IP: 10.9.9.9\r\n"


def upstream_has_no_address_header(wire: WireServers) -> bool:
    received = wire.settle().lower()
    return bool(received) and not any(h in received for h in ADDRESS_HEADERS)


def record(proxy: Proxy, ref: str) -> dict[str, Any]:
    return proxy.record(ref)


def test_balancer_forwards_a_source_address_host(fwd_proxy: Proxy, wire: WireServers) -> None:
    """The kiosk behind the balancer is identified by its forwarded address, no login."""
    wire.clear()
    raw = send(fwd_proxy, BALANCER, plain("linkedin.com", f"X-Forwarded-For: {KIOSK_IP}\r\n"))
    assert status(raw) == 200
    assert upstream_has_no_address_header(wire)
    (rec,) = [r for r in fwd_proxy.wait_for_records(1) if r["url"]["domain"] == "linkedin.com"]
    assert rec["user"]["name"] == "kiosk-reception"
    assert rec["source"] == {"ip": KIOSK_IP}
    assert rec["socialgate"]["forwarded_by"] == BALANCER


def test_forwarded_address_in_blocked_record(fwd_proxy: Proxy) -> None:
    """A blocked user's record names the client the balancer forwarded, not the balancer."""
    head = plain("www.facebook.com", f"X-Forwarded-For: {OTHER}\r\n" + proxy_auth("carol"))
    raw = send(fwd_proxy, BALANCER, head)
    assert status(raw) == 403
    rec = record(fwd_proxy, ref_of(raw))
    assert rec["source"]["ip"] == OTHER
    assert rec["user"]["name"] == "carol"


@pytest.mark.parametrize(
    "xff",
    [
        f"X-Forwarded-For: {KIOSK_IP}\r\n",  # direct to the worker
        f"Forwarded: for={KIOSK_IP}\r\nX-Real-IP: {KIOSK_IP}\r\n",  # never believed
    ],
)
def test_direct_client_cannot_claim_an_address(
    fwd_proxy: Proxy, wire: WireServers, xff: str
) -> None:
    """A client that is not the balancer claims the kiosk's address: it must log in."""
    wire.clear()
    raw = send(fwd_proxy, OTHER, plain("linkedin.com", xff))
    assert status(raw) == 407
    assert wire.settle() == b""


def test_client_header_through_balancer_is_not_reached(fwd_proxy: Proxy) -> None:
    """A client's own X-Forwarded-For, with the balancer's after it, is never believed."""
    head = plain("linkedin.com", f"X-Forwarded-For: {KIOSK_IP}\r\nX-Forwarded-For: {OTHER}\r\n")
    assert status(send(fwd_proxy, BALANCER, head)) == 407


@pytest.mark.parametrize("xff", ["", "X-Forwarded-For: \r\n", "X-Forwarded-For: unknown\r\n"])
def test_balancer_request_without_client_is_refused(
    fwd_proxy: Proxy, wire: WireServers, xff: str
) -> None:
    """From the balancer, no usable X-Forwarded-For is a 400; nothing goes upstream."""
    wire.clear()
    raw = send(fwd_proxy, BALANCER, plain("example.org", xff + proxy_auth("alice")))
    assert status(raw) == 400
    assert wire.settle() == b""


def test_social_refusal_is_recorded(fwd_proxy: Proxy) -> None:
    """A refused social request is recorded as bad-forwarded-for."""
    raw = send(fwd_proxy, BALANCER, plain("x.com", proxy_auth("alice")))
    assert status(raw) == 400
    rec = record(fwd_proxy, ref_of(raw))
    assert rec["event"]["reason"] == "bad-forwarded-for"
    assert rec["source"]["ip"] == BALANCER


def test_non_social_request_loses_address_headers(fwd_proxy: Proxy, wire: WireServers) -> None:
    """Address headers are removed from every request, social or not."""
    wire.clear()
    head = plain("example.org", f"X-Forwarded-For: {OTHER}\r\n{spoofs()}" + proxy_auth("alice"))
    assert status(send(fwd_proxy, BALANCER, head)) == 200
    assert upstream_has_no_address_header(wire)


def tunnel_request(proxy: Proxy, connect_xff: str, inner: str, user: str | None) -> bytes:
    """CONNECT linkedin.com from the balancer, TLS to the proxy, one request inside."""
    sock = socket.create_connection(
        ("127.0.0.1", proxy.port), timeout=10, source_address=(BALANCER, 0)
    )
    head = "CONNECT linkedin.com:443 HTTP/1.1\r\nHost: linkedin.com:443\r\n" + connect_xff
    sock.sendall((head + (proxy_auth(user) if user else "") + "\r\n").encode())
    resp = sock.recv(4096)
    if status(resp) != 200:
        sock.close()
        return resp
    tls = ssl.create_default_context(cafile=str(proxy.ca)).wrap_socket(
        sock, server_hostname="linkedin.com"
    )
    tls.sendall(
        f"GET /feed HTTP/1.1\r\nHost: linkedin.com\r\nAccept: */*\r\n{inner}"
        "Connection: close\r\n\r\n".encode()
    )
    data, _ = read_until_closed(tls)
    tls.close()
    return data


def test_tunnel_is_the_connects_client(fwd_proxy: Proxy, wire: WireServers) -> None:
    """The CONNECT's X-Forwarded-For is the tunnel's; a header inside it is ignored, removed."""
    wire.clear()
    raw = tunnel_request(
        fwd_proxy, f"X-Forwarded-For: {KIOSK_IP}\r\n", f"X-Forwarded-For: {OTHER}\r\n", None
    )
    assert status(raw) == 200
    assert upstream_has_no_address_header(wire)
    recs = [r for r in fwd_proxy.wait_for_records(1) if r["url"].get("path") == "/feed"]
    assert recs[-1]["user"]["name"] == "kiosk-reception"
    assert recs[-1]["source"]["ip"] == KIOSK_IP


def test_tunnel_without_header_is_refused(fwd_proxy: Proxy) -> None:
    """A CONNECT from the balancer without X-Forwarded-For is refused (400)."""
    assert status(tunnel_request(fwd_proxy, "", "", "alice")) == 400


def test_proxy_auth_through_balancer(fwd_proxy: Proxy) -> None:
    """A tunnel with proxy credentials works behind the balancer (allowed, recorded)."""
    raw = tunnel_request(fwd_proxy, f"X-Forwarded-For: {OTHER}\r\n", "", "alice")
    assert status(raw) == 200
