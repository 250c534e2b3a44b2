"""Raw TCP refusal at the layer choice (class 4), with mitmproxy's test helpers (no network)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from mitmproxy import options
from mitmproxy.addons import next_layer, proxyserver
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers import HttpLayer, TCPLayer, modes
from mitmproxy.proxy.layers.http import HTTPMode
from mitmproxy.test import taddons, tflow

from proxy_addons.addons import raw_tcp
from proxy_addons.addons.conn_state import ConnState
from proxy_addons.addons.raw_tcp import RawTcpGuard
from proxy_addons.identity import Identity
from tests.support.fake_audit import FakeAuditTrail
from tests.support.gate_hooks import gate_on, policy_file

__all__ = ["policy_file"]  # fixture


# The raw TCP guard under test, its audit trail, and mitmproxy's test context.
Parts = tuple[RawTcpGuard, FakeAuditTrail, Any]


@pytest.fixture
def parts(policy_file: pathlib.Path) -> Iterator[Parts]:
    g, sink = gate_on(policy_file)
    guard = RawTcpGuard(g)
    with taddons.context(g, guard, proxyserver.Proxyserver(), next_layer.NextLayer()) as tctx:
        yield guard, sink, tctx


def tunnel_context(g: RawTcpGuard, user: str | None, host: str, sni: str | None = None) -> Context:
    client = tflow.tclient_conn()
    ident = Identity(user, "proxyauth" if user else "none", ())
    g.gate.conns[client] = ConnState(connect_host=host, connect_port=5222, sni=sni, identity=ident)
    ctx = Context(client, options.Options())
    ctx.server.address = (host, 5222)
    return ctx


# -- the refusing layer ---------------------------------------------------------------------


def test_refused_layer_closes_client_and_never_opens_server() -> None:
    """Its first event closes the client; later data is dropped; no OpenConnection at all."""
    ctx = Context(tflow.tclient_conn(), options.Options())
    lay = raw_tcp.RefusedTcpLayer(ctx)
    cmds = list(lay.handle_event(events.Start()))
    cmds += list(lay.handle_event(events.DataReceived(ctx.client, b"raw")))
    assert [type(c) for c in cmds] == [commands.CloseConnection]
    assert isinstance(cmds[0], commands.CloseConnection)
    assert cmds[0].connection is ctx.client


# -- the layer choice -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "host", "sni", "refused", "reason"),
    [
        # no exemption, read-only, expired: refused with the exemption's reason
        ("carol", "www.facebook.com", None, True, "no-exemption"),
        ("dana", "x.com", None, True, "read-only"),
        ("erin", "facebook.com", None, True, "expired"),
        (None, "facebook.com", None, True, "no-identity"),
        # a social SNI behind an innocent CONNECT is still social
        ("carol", "www.example.org", "www.facebook.com", True, "no-exemption"),
        # social network by address
        ("carol", "192.0.2.10", None, True, "no-exemption"),
        # a full exemption covers raw TCP to its site; non-social is left alone
        ("alice", "x.com", None, False, None),
        ("carol", "www.example.org", None, False, None),
    ],
)
def test_raw_tcp_layer_choice(
    parts: Parts,
    user: str | None,
    host: str,
    sni: str | None,
    refused: bool,
    reason: str | None,
) -> None:
    """A TCPLayer in a tunnel the gate refuses is swapped for the refusing layer, and recorded."""
    g, sink, _ = parts
    ctx = tunnel_context(g, user, host, sni)
    nl = layer.NextLayer(ctx)
    nl.layer = TCPLayer(ctx)
    g.next_layer(nl)
    assert isinstance(nl.layer, raw_tcp.RefusedTcpLayer) is refused
    if refused:
        (rec,) = sink.records
        assert rec["event"]["action"] == "connection-blocked"
        assert rec["event"]["reason"] == reason
        assert rec["socialgate"]["stage"] == "tcp"
        assert rec["socialgate"]["enforcement"] == "connection-closed"
    else:
        assert sink.records == []


def test_layer_choice_asks_nextlayer_first(parts: Parts) -> None:
    """Before mitmproxy's NextLayer ran (mitmdump -s order), the gate lets it decide first."""
    g, sink, _ = parts
    ctx = tunnel_context(g, "carol", "www.facebook.com")
    ctx.client.alpn = None  # no TLS: the payload itself decides
    modes.HttpProxy(ctx)  # the layers above a CONNECT tunnel's payload
    HttpLayer(ctx, HTTPMode.regular)
    nl = layer.NextLayer(ctx)
    nl.events.append(events.DataReceived(ctx.client, b"\x00\x01binary"))
    g.next_layer(nl)
    assert isinstance(nl.layer, raw_tcp.RefusedTcpLayer)
    assert sink.records[-1]["event"]["reason"] == "no-exemption"


def test_http_in_social_tunnel_is_left_to_the_request_hooks(
    parts: Parts,
) -> None:
    """HTTP is not raw TCP: its layer is kept and each request is judged later."""
    g, sink, _ = parts
    ctx = tunnel_context(g, "carol", "www.facebook.com")
    nl = layer.NextLayer(ctx)
    nl.layer = HttpLayer(ctx, HTTPMode.transparent)
    g.next_layer(nl)
    assert isinstance(nl.layer, HttpLayer)
    assert sink.records == []


def test_failed_connection_refuses_raw_tcp(parts: Parts) -> None:
    """After an earlier hook failed on the connection, raw TCP is refused as an error."""
    g, sink, _ = parts
    ctx = tunnel_context(g, "alice", "x.com")
    g.gate.conns[ctx.client].failed = True
    nl = layer.NextLayer(ctx)
    nl.layer = TCPLayer(ctx)
    g.next_layer(nl)
    assert isinstance(nl.layer, raw_tcp.RefusedTcpLayer)
    assert sink.records[-1]["event"]["reason"] == "error"


def test_decision_error_refuses_raw_tcp(parts: Parts, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception while deciding refuses the connection (fail closed)."""
    g, sink, _ = parts
    ctx = tunnel_context(g, "alice", "x.com")

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("proxy_addons.addons.gate.decide", boom)
    nl = layer.NextLayer(ctx)
    nl.layer = TCPLayer(ctx)
    g.next_layer(nl)
    assert isinstance(nl.layer, raw_tcp.RefusedTcpLayer)
    assert sink.records[-1]["event"]["reason"] == "error"


# -- the backstop (TCP layers mitmproxy creates without next_layer) ---------------------------


def test_tcp_flow_outside_next_layer_has_its_messages_dropped(
    parts: Parts,
) -> None:
    """A refused TCP flow (e.g. after an HTTP 101) relays empty messages and is recorded."""
    g, sink, _ = parts
    f = tflow.ttcpflow()
    ident = Identity("carol", "proxyauth", ())
    g.gate.conns[f.client_conn] = ConnState(connect_host="www.facebook.com", identity=ident)
    g.tcp_start(f)
    g.tcp_message(f)
    assert all(m.content == b"" for m in f.messages[-1:])
    assert sink.records[-1]["socialgate"]["enforcement"] == "dropped"


def test_non_social_tcp_flow_is_untouched(parts: Parts) -> None:
    """Non-social raw TCP keeps its bytes and leaves no record."""
    g, sink, _ = parts
    f = tflow.ttcpflow()
    g.gate.conns[f.client_conn] = ConnState(connect_host="www.example.org")
    before = f.messages[-1].content
    g.tcp_start(f)
    g.tcp_message(f)
    assert f.messages[-1].content == before
    assert sink.records == []
