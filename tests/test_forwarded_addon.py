"""The ForwardedFor addon: client addresses behind a trusted balancer, with mitmproxy's test
helpers (no network)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from mitmproxy import exceptions, http
from mitmproxy.addons import proxyauth, proxyserver
from mitmproxy.test import taddons, tflow, tutils

from proxy_addons.addons.forwarded import ForwardedFor
from proxy_addons.addons.gate import Gate
from proxy_addons.addons.identity import authenticate_by_address
from tests.support.fake_audit import FakeAuditTrail
from tests.support.gate_hooks import gate_on, policy_file, run, social_flow
from tests.support.policies import KIOSK_IP

__all__ = ["policy_file"]  # fixture

BALANCER = "127.0.0.1"
Parts = tuple[ForwardedFor, Gate, FakeAuditTrail, Any]


@pytest.fixture
def parts(policy_file: pathlib.Path) -> Iterator[Parts]:
    g, sink = gate_on(policy_file)
    fwd = ForwardedFor(g)
    auth = proxyauth.ProxyAuth()
    with taddons.context(fwd, g, auth, proxyserver.Proxyserver()) as tctx:
        tctx.configure(fwd, socialgate_trusted_proxies=f"{BALANCER}, 10.1.0.0/16")
        tctx.configure(auth, proxyauth="any")
        yield fwd, g, sink, tctx


def from_peer(f: http.HTTPFlow, peer: str, xff: list[str] | None = None) -> http.HTTPFlow:
    f.client_conn.peername = (peer, 40000)
    for value in xff or []:
        f.request.headers.add("X-Forwarded-For", value)
    return f


def challenged(f: http.HTTPFlow) -> http.HTTPFlow:
    """As proxyauth leaves a request without credentials: a 407."""
    f.response = http.Response.make(407, b"", {"Proxy-Authenticate": 'Basic realm="x"'})
    return f


def through(parts: Parts, f: http.HTTPFlow) -> http.HTTPFlow:
    """The request through ForwardedFor, then the gate (as mitmproxy calls them)."""
    fwd, g, _, _ = parts
    fwd.requestheaders(f)
    run(g.requestheaders(f))
    return f


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("10.0.0.0/33", "'10.0.0.0/33'"),
        ("proxy.example", "'proxy.example'"),
        ("127.0.0.1,,10.0.0.1", "empty entry"),
    ],
)
def test_bad_option_is_refused(parts: Parts, value: str, named: str) -> None:
    """A bad entry is an OptionsError naming the option and the entry."""
    fwd, _, _, tctx = parts
    with pytest.raises(exceptions.OptionsError, match=rf"socialgate_trusted_proxies=.*{named}"):
        tctx.configure(fwd, socialgate_trusted_proxies=value)


def test_forwarded_address_is_the_records_source(parts: Parts) -> None:
    """Behind the balancer, source.ip is the forwarded client; the balancer is noted."""
    _, _, sink, _ = parts
    f = through(parts, from_peer(social_flow("carol"), BALANCER, ["10.0.0.9"]))
    assert f.response is not None
    assert f.response.status_code == 403
    (rec,) = sink.records
    assert rec["source"] == {"ip": "10.0.0.9"}
    assert rec["socialgate"]["forwarded_by"] == BALANCER


def test_direct_client_keeps_its_peer_address(parts: Parts) -> None:
    """From an untrusted peer the header is ignored: source.ip and port are the peer's."""
    _, _, sink, _ = parts
    through(parts, from_peer(social_flow("carol"), "127.0.0.9", ["10.0.0.9"]))
    (rec,) = sink.records
    assert rec["source"] == {"ip": "127.0.0.9", "port": 40000}
    assert "forwarded_by" not in rec["socialgate"]


def test_source_address_identity_behind_balancer(parts: Parts) -> None:
    """A host named by address is identified by the forwarded address, past proxyauth's 407."""
    _, _, sink, _ = parts
    f = through(
        parts, challenged(from_peer(social_flow(None, "linkedin.com"), BALANCER, [KIOSK_IP]))
    )
    assert f.response is None  # allowed
    (rec,) = sink.records
    assert rec["user"]["name"] == "kiosk-reception"
    assert rec["source"]["ip"] == KIOSK_IP


@pytest.mark.parametrize(
    ("peer", "xff"),
    [
        ("127.0.0.9", [KIOSK_IP]),  # untrusted peer claims the kiosk's address
        (BALANCER, [KIOSK_IP, "10.0.0.9"]),  # through the balancer: the client's own is left
    ],
)
def test_spoofed_address_gets_no_identity(parts: Parts, peer: str, xff: list[str]) -> None:
    """Claiming the kiosk's address in X-Forwarded-For does not make one the kiosk."""
    f = through(parts, challenged(from_peer(social_flow(None, "linkedin.com"), peer, xff)))
    assert f.response is not None
    assert f.response.status_code == 407


@pytest.mark.parametrize("xff", [[], [""], ["unknown"], ["10.0.0.9, garbage"]])
def test_balancer_without_usable_header_is_refused(parts: Parts, xff: list[str]) -> None:
    """From the balancer, a request whose header names no client is refused with 400."""
    _, _, sink, _ = parts
    f = through(parts, from_peer(social_flow("alice", "example.org"), BALANCER, xff))
    assert f.response is not None
    assert f.response.status_code == 400
    assert b"X-Forwarded-For" in (f.response.content or b"")
    assert sink.records == []  # not social: nothing recorded


def test_social_refusal_is_recorded(parts: Parts) -> None:
    """A refused social request is recorded as bad-forwarded-for, from the balancer."""
    _, _, sink, _ = parts
    f = through(parts, from_peer(social_flow("alice", "x.com"), BALANCER, []))
    assert f.response is not None
    assert f.response.status_code == 400
    (rec,) = sink.records
    assert rec["event"]["reason"] == "bad-forwarded-for"
    assert rec["event"]["id"] == f.response.headers["x-socialgate-ref"]
    assert rec["source"] == {"ip": BALANCER}
    assert rec["socialgate"]["enforcement"] == "refused"


@pytest.mark.parametrize("peer", [BALANCER, "127.0.0.9"])
def test_address_headers_never_go_upstream(parts: Parts, peer: str) -> None:
    """X-Forwarded-For, Forwarded and X-Real-IP are removed from every request."""
    fwd, _, _, _ = parts
    f = from_peer(tflow.tflow(), peer, ["10.0.0.9"])
    f.request.headers["Forwarded"] = "for=10.9.9.9"
    f.request.headers["X-Real-IP"] = "10.9.9.9"
    f.request.headers["X-Kept"] = "1"
    fwd.requestheaders(f)
    assert f.response is None
    assert not {"x-forwarded-for", "forwarded", "x-real-ip"} & set(f.request.headers.keys())
    assert "x-kept" in f.request.headers


def connect(fwd: ForwardedFor, g: Gate, peer: str, xff: list[str]) -> http.HTTPFlow:
    f = from_peer(tflow.tflow(req=tutils.treq(method=b"CONNECT", host="x.com", port=443)), peer)
    f.request.path = ""
    for value in xff:
        f.request.headers.add("X-Forwarded-For", value)
    fwd.http_connect(f)
    run(g.http_connect(f))
    if f.response is None:
        fwd.http_connected(f)
    return f


def test_tunnel_takes_the_connects_address(parts: Parts) -> None:
    """Every request in a tunnel is the CONNECT's client; its own header is ignored."""
    fwd, g, sink, _ = parts
    c = connect(fwd, g, BALANCER, ["10.0.0.9"])
    assert c.response is None
    inner = social_flow("carol", "x.com")
    inner.client_conn = c.client_conn
    inner.request.scheme = "https"
    inner.request.headers["X-Forwarded-For"] = "10.9.9.9"
    through(parts, inner)
    assert "x-forwarded-for" not in inner.request.headers
    assert sink.records[-1]["source"]["ip"] == "10.0.0.9"


def test_tunnel_without_header_is_refused(parts: Parts) -> None:
    """A CONNECT from the balancer without the header is refused and recorded if social."""
    fwd, g, sink, _ = parts
    c = connect(fwd, g, BALANCER, [])
    assert c.response is not None
    assert c.response.status_code == 400
    (rec,) = sink.records
    assert (rec["event"]["action"], rec["event"]["reason"]) == (
        "connection-blocked",
        "bad-forwarded-for",
    )


def test_balancer_connection_is_not_a_source_address(parts: Parts) -> None:
    """A balancer listed in identity.source_addresses does not authenticate its clients."""
    fwd, g, _, tctx = parts
    tctx.configure(fwd, socialgate_trusted_proxies=KIOSK_IP)
    client = tflow.tclient_conn()
    client.peername = (KIOSK_IP, 40000)
    fwd.client_connected(client)
    authenticate_by_address(g.store.current, client)
    assert client not in tctx.master.addons.get("proxyauth").authenticated
