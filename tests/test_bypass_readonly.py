"""Bypass classes 5 and 6: a read-only exemption lets nothing that writes reach the site.

Every attempt is made as dana (read-only on the whole social_networking category), over
plain HTTP and inside an intercepted CONNECT tunnel, against upstreams that record raw
bytes: an attempt is refused only if no byte of it arrived upstream, the client saw 403
and the audit record says request-blocked / read-only with what the request wrote.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

from tests.support.client import connect_tunnel, proxy_auth, read_all, ref_of, status
from tests.support.policies import PASSWORD
from tests.support.proxy import Proxy
from tests.support.wire import REPLY, WireServers

pytestmark = pytest.mark.integration

USER = "dana"
HOST = "www.facebook.com"


def _tls(proxy: Proxy, target: str = f"{HOST}:443") -> ssl.SSLSocket:
    sock, resp = connect_tunnel(proxy.port, target, USER, PASSWORD)
    assert b" 200 " in resp.split(b"\r\n", 1)[0], resp
    ctx = ssl.create_default_context(cafile=str(proxy.ca))
    return ctx.wrap_socket(sock, server_hostname=HOST)


def send(proxy: Proxy, transport: str, method: str, lines: list[str], body: bytes) -> bytes:
    """One HTTP/1.1 request from dana with extra header ``lines``; the raw response."""
    if transport == "plain":
        target = f"http://{HOST}/post/1"
        auth = proxy_auth(USER)
    else:
        target = "/post/1"
        auth = ""
    head = f"{method} {target} HTTP/1.1\r\nHost: {HOST}\r\nAccept: */*\r\n{auth}"
    head += "".join(line + "\r\n" for line in lines) + "Connection: close\r\n\r\n"
    raw = head.encode("latin-1") + body
    if transport == "plain":
        sock: socket.socket = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    else:
        sock = _tls(proxy)
    sock.settimeout(5)
    sock.sendall(raw)
    data = read_all(sock)
    sock.close()
    return data


def assert_refused(proxy: Proxy, wire: WireServers, resp: bytes, writes: str) -> dict[str, Any]:
    """Nothing upstream, 403 to the client, and a record that says read-only and why."""
    assert wire.settle() == b""
    assert status(resp) == 403, resp[:300]
    rec = proxy.record(ref_of(resp))
    assert rec["event"]["action"] == "request-blocked"
    assert rec["event"]["reason"] == "read-only"
    assert rec["user"]["name"] == USER
    assert rec["socialgate"]["exemption_id"] == "EX-2026-002"
    assert writes in rec["socialgate"]["writes"]
    return rec


TRANSPORTS = ["plain", "tunnel"]

# (id, method, header lines, body, the write the record names)
UPGRADES = [
    ("websocket-and-h2c", "GET", ["Upgrade: websocket, h2c", "Connection: Upgrade"], "upgrade"),
    ("h2c", "GET", ["Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings"], "upgrade"),
    ("odd-case-space", "GET", ["uPgRaDe:  WebSocket ", "Connection: upgrade"], "upgrade"),
    ("repeated", "GET", ["Upgrade: foo", "Upgrade: websocket", "Connection: Upgrade"], "upgrade"),
    ("other-protocol", "GET", ["Upgrade: TLS/1.2", "Connection: Upgrade"], "upgrade"),
    ("connection-only", "GET", ["Connection: keep-alive, Upgrade"], "connection-upgrade"),
    ("options-upgrade", "OPTIONS", ["Upgrade: websocket", "Connection: Upgrade"], "upgrade"),
]

OVERRIDES = [
    ("x-http-method-override", "GET", ["X-HTTP-Method-Override: POST"], "method-override"),
    ("x-http-method", "GET", ["X-HTTP-Method: DELETE"], "method-override"),
    ("x-method-override", "GET", ["x-method-override: PUT"], "method-override"),
    ("upper-case", "HEAD", ["X-HTTP-METHOD-OVERRIDE: PATCH"], "method-override"),
    ("underscore", "GET", ["X_HTTP_Method_Override: POST"], "method-override"),
    ("repeated", "GET", ["X-HTTP-Method: GET", "X-HTTP-Method: POST"], "method-override"),
]

BODIES = [
    ("get-length", "GET", ["Content-Length: 11"], b"status=hi!!", "body"),
    ("options-length", "OPTIONS", ["Content-Length: 4"], b"body", "body"),
    ("head-length", "HEAD", ["Content-Length: 3"], b"abc", "body"),
]


# -- class 5: every upgrade is a write channel; class 6: method overrides --------------

HEADER_WRITES = [pytest.param(m, h, w, id=f"upgrade-{i}") for i, m, h, w in UPGRADES] + [
    pytest.param(m, h, w, id=f"override-{i}") for i, m, h, w in OVERRIDES
]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("method", "lines", "writes"), HEADER_WRITES)
def test_header_that_writes_is_refused(
    wire_proxy: Proxy,
    wire: WireServers,
    transport: str,
    method: str,
    lines: list[str],
    writes: str,
) -> None:
    """Any Upgrade header or Connection: upgrade, and any method-override header in any
    spelling, from a read-only user is refused (never a 101, nothing upstream)."""
    wire.clear()
    resp = send(wire_proxy, transport, method, lines, b"")
    assert b"101" not in resp.split(b"\r\n", 1)[0]
    assert_refused(wire_proxy, wire, resp, writes)


# -- class 6: bodies on reads ----------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("method", "lines", "body", "writes"),
    [pytest.param(m, h, b, w, id=i) for i, m, h, b, w in BODIES],
)
def test_body_on_a_read_is_refused(
    wire_proxy: Proxy,
    wire: WireServers,
    transport: str,
    method: str,
    lines: list[str],
    body: bytes,
    writes: str,
) -> None:
    """A body on GET, HEAD or OPTIONS is a write: refused, and no body byte goes upstream."""
    wire.clear()
    resp = send(wire_proxy, transport, method, lines, body)
    assert_refused(wire_proxy, wire, resp, writes)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_chunked_body_on_a_read_is_cut_off(
    wire_proxy: Proxy, wire: WireServers, transport: str
) -> None:
    """A chunked body on a GET is a write of no known size: the request is killed at once
    (class 8: no block page after an unbounded body), nothing goes upstream, and the record
    says read-only, body, killed."""
    wire.clear()
    before = len(wire_proxy.access_records())
    lines = ["Transfer-Encoding: chunked"]
    resp = send(wire_proxy, transport, "GET", lines, b"5\r\nhello\r\n0\r\n\r\n")
    assert status(resp) == 0, resp[:300]
    assert wire.settle() == b""
    rec = wire_proxy.wait_for_records(before + 1)[-1]
    assert rec["event"]["action"] == "request-blocked"
    assert rec["event"]["reason"] == "read-only"
    assert rec["user"]["name"] == USER
    assert "body" in rec["socialgate"]["writes"]
    assert rec["socialgate"]["enforcement"] == "killed"


# -- HTTP/2: no length header, the body is only known once it arrives -----------------


def h2_request(
    proxy: Proxy, method: str, body: bytes | None, *, length: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/2 request in an intercepted tunnel; (status, headers, body) of the answer."""
    sock, resp = connect_tunnel(proxy.port, f"{HOST}:443", USER, PASSWORD)
    assert b" 200 " in resp.split(b"\r\n", 1)[0], resp
    ctx = ssl.create_default_context(cafile=str(proxy.ca))
    ctx.set_alpn_protocols(["h2"])
    tls = ctx.wrap_socket(sock, server_hostname=HOST)
    assert tls.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [
        (":method", method),
        (":scheme", "https"),
        (":authority", HOST),
        (":path", "/post/2"),
        ("accept", "*/*"),
    ]
    if length and body is not None:
        headers.append(("content-length", str(len(body))))
    conn.send_headers(1, headers, end_stream=body is None)
    tls.sendall(conn.data_to_send())
    if body is not None:
        for i in range(0, len(body), 8192):
            conn.send_data(1, body[i : i + 8192], end_stream=i + 8192 >= len(body))
            tls.sendall(conn.data_to_send())
    code = 0
    got: dict[str, str] = {}
    data = b""
    tls.settimeout(5)
    done = False
    while not done:
        try:
            chunk = tls.recv(65536)
        except (TimeoutError, ssl.SSLError, OSError):
            break
        if not chunk:
            break
        try:
            events = conn.receive_data(chunk)
        except h2.exceptions.ProtocolError:
            break  # e.g. a body on the answer to HEAD: the status and headers are in
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                got = {k.decode(): v.decode() for k, v in ev.headers}
                code = int(got[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        tls.sendall(conn.data_to_send())
    tls.close()
    return code, got, data


@pytest.mark.parametrize(
    ("method", "body", "length"),
    [
        pytest.param("GET", b"status=posted", False, id="get-no-length"),
        pytest.param("OPTIONS", b"x" * 20000, False, id="options-no-length-large"),
        pytest.param("HEAD", b"q", False, id="head-no-length"),
        pytest.param("GET", b"status=posted", True, id="get-with-length"),
    ],
)
def test_h2_body_on_a_read_is_refused(
    wire_proxy: Proxy, wire: WireServers, method: str, body: bytes, length: bool
) -> None:
    """An HTTP/2 read whose headers did not end the stream is refused once its body shows."""
    wire.clear()
    code, headers, _ = h2_request(wire_proxy, method, body, length=length)
    assert wire.settle() == b""
    assert code == 403
    rec = wire_proxy.record(headers["x-socialgate-ref"])
    assert (rec["event"]["action"], rec["event"]["reason"]) == ("request-blocked", "read-only")
    assert rec["socialgate"]["writes"] == ["body"]


def test_h2_read_without_body_is_allowed(wire_proxy: Proxy, wire: WireServers) -> None:
    """An HTTP/2 GET that ends with its headers still reaches the site, and is recorded."""
    wire.clear()
    before = len(wire_proxy.access_records())
    code, _, data = h2_request(wire_proxy, "GET", None)
    assert code == 200
    assert data == REPLY
    assert wire.https.settle().startswith(b"GET /post/2 HTTP/1.1\r\n")
    recs = wire_proxy.wait_for_records(before + 1)
    assert recs[-1]["event"]["action"] == "request-allowed"
    assert recs[-1]["url"]["path"] == "/post/2"


# -- what read-only still allows ------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("method", "lines"),
    [
        pytest.param("GET", [], id="get"),
        pytest.param("GET", ["Content-Length: 0"], id="get-length-0"),
        pytest.param("HEAD", [], id="head"),
        pytest.param("GET", ["Connection: keep-alive"], id="keep-alive"),
    ],
)
def test_plain_read_reaches_the_site(
    wire_proxy: Proxy, wire: WireServers, transport: str, method: str, lines: list[str]
) -> None:
    """dana's plain reads still work: the request arrives and the reply comes back."""
    wire.clear()
    resp = send(wire_proxy, transport, method, lines, b"")
    assert status(resp) == 200, resp[:300]
    assert wire.settle().startswith(f"{method} /post/1 HTTP/1.1\r\n".encode())
