"""Bypass classes enforced at mitmproxy's level, proved on the wire (raw-bytes upstreams).

4: raw bytes (neither TLS nor HTTP) in a social tunnel; 7: proxy credentials forwarded
upstream; 8: a killed streamed upload left hanging.
"""

from __future__ import annotations

import pathlib
import socket
import ssl
import time
from collections.abc import Iterator

import h2.connection
import h2.events
import h2.exceptions
import pytest

from tests.support.client import connect_tunnel
from tests.support.policies import KIOSK_IP
from tests.support.proxy import Proxy, start_proxy
from tests.support.rawclient import (
    basic,
    exchange,
    h2_get,
    h2_start,
    intercepted,
    proxy_socket,
    read_until_closed,
    record_by_port,
    records_by_port,
    tunnel,
)
from tests.support.wire import WireServers

pytestmark = pytest.mark.integration

RAW = b"\x00\x01\x02raw-social-payload\x7f\n"


@pytest.fixture(scope="module")
def run_proxy(
    tmp_path_factory: pytest.TempPathFactory, policy_dir: pathlib.Path, wire: WireServers
) -> Iterator[Proxy]:
    """`socialgate run` adds the addons after mitmproxy's NextLayer (the other hook order)."""
    p = start_proxy(tmp_path_factory.mktemp("wire-run"), policy_dir, wire, via="run")  # type: ignore[arg-type]
    yield p
    p.stop()


# -- class 4: raw bytes in a social tunnel --------------------------------------------------


@pytest.mark.parametrize(
    ("user", "target", "payload", "reason"),
    [
        # no exemption: binary bytes, an SSH banner, an XMPP-like stream, port 80
        ("carol", "www.facebook.com:5222", RAW, "no-exemption"),
        ("carol", "facebook.com:22", b"SSH-2.0-OpenSSH_9.6\r\n", "no-exemption"),
        (
            "carol",
            "chat.facebook.com:5222",
            b"<?xml version='1.0'?><stream:stream>",
            "no-exemption",
        ),
        ("carol", "www.facebook.com:80", b"\x16\x00", "no-exemption"),
        # an IP literal in the category's networks
        ("carol", "192.0.2.10:8443", RAW, "no-exemption"),
        # read-only and expired exemptions cannot vouch for an opaque stream
        ("dana", "x.com:8443", RAW, "read-only"),
        ("erin", "www.facebook.com:8443", RAW, "expired"),
        # a full exemption for other sites does not cover this one
        ("alice", "www.facebook.com:8443", RAW, "no-exemption"),
    ],
)
def test_raw_bytes_in_social_tunnel_never_reach_the_site(
    wire_proxy: Proxy, wire: WireServers, user: str, target: str, payload: bytes, reason: str
) -> None:
    """Raw TCP in a blocked social tunnel is closed with zero bytes upstream and recorded."""
    wire.clear()
    sock = tunnel(wire_proxy, target, user)
    port = sock.getsockname()[1]
    _, closed = exchange(sock, payload, timeout=3)
    assert wire.settle() == b""
    assert wire.http.connections() == 0
    assert closed, "the proxy must close the tunnel"
    rec = record_by_port(wire_proxy, port)
    assert rec["event"]["action"] == "connection-blocked"
    assert rec["event"]["reason"] == reason
    assert rec["socialgate"]["stage"] == "tcp"
    assert len(records_by_port(wire_proxy, port)) == 1


@pytest.mark.parametrize(
    ("user", "reason"),
    [("carol", "no-exemption"), ("dana", "read-only"), ("erin", "expired")],
)
def test_raw_bytes_inside_intercepted_tls_never_reach_the_site(
    wire_proxy: Proxy, wire: WireServers, user: str, reason: str
) -> None:
    """A non-HTTP payload after the client TLS layer is closed; nothing reaches the site."""
    wire.clear()
    tls = intercepted(wire_proxy, "www.facebook.com:443", user)
    port = tls.getsockname()[1]
    _, closed = exchange(tls, RAW, timeout=3)
    assert wire.settle() == b""
    assert closed
    rec = record_by_port(wire_proxy, port)
    assert rec["event"]["action"] == "connection-blocked"
    assert rec["event"]["reason"] == reason
    assert rec["socialgate"]["stage"] == "tcp"


@pytest.mark.parametrize(
    ("user", "target", "source"),
    [
        ("alice", "x.com:8443", "127.0.0.1"),  # group exemption, full access
        (None, "www.linkedin.com:8443", KIOSK_IP),  # source-address identity, full access
    ],
)
def test_raw_bytes_with_full_exemption_still_flow(
    wire_proxy: Proxy, wire: WireServers, user: str | None, target: str, source: str
) -> None:
    """A full exemption covers an opaque stream to its site, as before."""
    wire.clear()
    sock, head = connect_tunnel(wire_proxy.port, target, user, source=source)
    assert head.startswith(b"HTTP/1.1 200"), head
    sock.sendall(RAW)
    time.sleep(0.3)
    sock.close()
    assert wire.http.settle() == RAW


def test_raw_bytes_to_non_social_site_flow_unrecorded(wire_proxy: Proxy, wire: WireServers) -> None:
    """Non-social raw TCP through a tunnel is left alone: relayed, not recorded."""
    wire.clear()
    sock = tunnel(wire_proxy, "www.example.org:5222", "carol")
    port = sock.getsockname()[1]
    sock.sendall(RAW)
    time.sleep(0.3)
    sock.sendall(b"second message\n")
    time.sleep(0.3)
    sock.close()
    assert wire.http.settle() == RAW + b"second message\n"
    time.sleep(0.2)
    assert records_by_port(wire_proxy, port) == []


@pytest.mark.parametrize("target", ["www.facebook.com:5222", "192.0.2.10:8443"])
def test_raw_bytes_refused_when_started_with_socialgate_run(
    run_proxy: Proxy, wire: WireServers, target: str
) -> None:
    """With NextLayer running before the gate, the raw TCP layer is still replaced."""
    wire.clear()
    sock = tunnel(run_proxy, target, "carol")
    port = sock.getsockname()[1]
    _, closed = exchange(sock, RAW, timeout=3)
    assert wire.settle() == b""
    assert closed
    assert record_by_port(run_proxy, port)["event"]["action"] == "connection-blocked"


# -- class 7: proxy credentials never go upstream --------------------------------------------

SECRET = basic("bob").split()[1].encode()  # bob's base64 credentials: never on the wire


def assert_no_proxy_headers(got: bytes) -> None:
    assert got, "the request itself was allowed and must have arrived"
    assert b"proxy-authorization" not in got.lower()
    assert b"proxy-connection" not in got.lower()
    assert SECRET not in got


def raw_request(host: str, path: str = "/", extra: str = "") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n"
        f"Proxy-Authorization: {basic('bob')}\r\nProxy-Connection: keep-alive\r\n"
        f"{extra}Connection: close\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("user", "target", "host"),
    [
        # plain HTTP inside a CONNECT tunnel: non-social and exempt social
        ("carol", "www.example.org:80", "www.example.org"),
        ("alice", "x.com:80", "x.com"),
        ("alice", "www.linkedin.com:8080", "www.linkedin.com"),
    ],
)
def test_proxy_credentials_in_plain_tunnel_are_not_forwarded(
    wire_proxy: Proxy, wire: WireServers, user: str, target: str, host: str
) -> None:
    """A Proxy-Authorization sent inside a tunnel is dropped before the request goes upstream."""
    wire.clear()
    sock = tunnel(wire_proxy, target, user)
    data, _ = exchange(
        sock, raw_request(host, "/tunnel", "Proxy-Authorization: Basic c2Vjb25kOnZhbHVl\r\n")
    )
    assert data.startswith(b"HTTP/1.1 200")
    got = wire.http.settle()
    assert_no_proxy_headers(got)
    assert b"c2Vjb25kOnZhbHVl" not in got


@pytest.mark.parametrize("alpn", [None, ["http/1.1"]])
def test_proxy_credentials_in_intercepted_tunnel_are_not_forwarded(
    wire_proxy: Proxy, wire: WireServers, alpn: list[str] | None
) -> None:
    """Inside an intercepted social tunnel (exempt user), the credentials are dropped."""
    wire.clear()
    tls = intercepted(wire_proxy, "x.com:443", "alice", alpn=alpn)
    data, _ = exchange(tls, raw_request("x.com", "/intercepted"))
    assert data.startswith(b"HTTP/1.1 200")
    assert_no_proxy_headers(wire.https.settle())


def test_proxy_credentials_over_http2_are_not_forwarded(
    wire_proxy: Proxy, wire: WireServers
) -> None:
    """An HTTP/2 request's proxy-authorization field is dropped too."""
    wire.clear()
    tls = intercepted(wire_proxy, "x.com:443", "alice", alpn=["h2"])
    assert tls.selected_alpn_protocol() == "h2"
    status = h2_get(
        tls,
        "x.com",
        "/h2",
        [("proxy-authorization", basic("bob")), ("proxy-connection", "keep-alive")],
    )
    tls.close()
    assert status == 200
    assert_no_proxy_headers(wire.https.settle())


def test_source_address_host_credentials_are_not_forwarded(
    wire_proxy: Proxy, wire: WireServers
) -> None:
    """A host identified by address is not challenged, so nothing removed its header before."""
    wire.clear()
    sock = proxy_socket(wire_proxy, source=KIOSK_IP)
    head = raw_request("www.example.org").replace(
        b"GET / HTTP/1.1", b"GET http://www.example.org/kiosk HTTP/1.1"
    )
    data, _ = exchange(sock, head)
    assert data.startswith(b"HTTP/1.1 200")
    assert_no_proxy_headers(wire.http.settle())


# -- class 8: a blocked upload is cut off at once -------------------------------------------

# seconds: the proxy must end a blocked upload this fast. Without the fix it hangs until the
# client gives up (over 6 s); 3.5 s leaves room for a loaded CI machine (2 s failed 1 run in 8).
CLOSE_WITHIN = 3.5


@pytest.fixture(scope="module")
def streaming_proxy(
    tmp_path_factory: pytest.TempPathFactory, policy_dir: pathlib.Path, wire: WireServers
) -> Iterator[Proxy]:
    """mitmdump with stream_large_bodies set: large bodies would go upstream as they arrive."""
    opts = ("--set", "stream_large_bodies=1k")
    p = start_proxy(tmp_path_factory.mktemp("wire-stream"), policy_dir, wire, options=opts)  # type: ignore[arg-type]
    yield p
    p.stop()


def trickle(
    sock: socket.socket | ssl.SSLSocket, piece: bytes, seconds: float = 6
) -> tuple[float, bytes, bool]:
    """Send ``piece`` every 0.1 s until the proxy closes; ``(elapsed, received, closed)``."""
    start = time.monotonic()
    got = b""
    sock.settimeout(0.1)
    while time.monotonic() - start < seconds:
        try:
            sock.sendall(piece)
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except (OSError, ssl.SSLError):
            return time.monotonic() - start, got, True
        if not chunk:
            return time.monotonic() - start, got, True
        got += chunk
    return time.monotonic() - start, got, False


def upload_head(target: str, host: str, framing: str, extra: str = "") -> bytes:
    return (
        f"POST {target} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n"
        f"Content-Type: application/octet-stream\r\n{framing}\r\n{extra}\r\n"
    ).encode()


CHUNK = b"64\r\n" + b"u" * 100 + b"\r\n"
FRAMINGS = {
    "content-length": ("Content-Length: 10000000", b"u" * 100),
    "chunked": ("Transfer-Encoding: chunked", CHUNK),
}


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
@pytest.mark.parametrize("extra", ["", "Expect: 100-continue\r\n"])
def test_blocked_plain_upload_is_closed_promptly(
    wire_proxy: Proxy, wire: WireServers, framing: str, extra: str
) -> None:
    """A blocked large upload over plain HTTP is cut off within seconds, nothing upstream."""
    head, piece = FRAMINGS[framing]
    wire.clear()
    sock = proxy_socket(wire_proxy)
    port = sock.getsockname()[1]
    auth = f"Proxy-Authorization: {basic('carol')}\r\n"
    sock.sendall(
        upload_head("http://www.facebook.com/upload", "www.facebook.com", head, auth + extra)
    )
    elapsed, got, closed = trickle(sock, piece)
    sock.close()
    assert closed, got[:200]
    assert elapsed < CLOSE_WITHIN, (elapsed, got[:200])
    assert b"100 Continue" not in got  # the upload was never invited
    assert wire.settle() == b""
    rec = record_by_port(wire_proxy, port)
    assert rec["event"]["action"] == "request-blocked"
    assert rec["socialgate"]["enforcement"] == "killed"


@pytest.mark.parametrize(
    ("user", "host", "reason"),
    [("carol", "www.facebook.com", "no-exemption"), ("dana", "x.com", "read-only")],
)
@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_blocked_intercepted_upload_is_closed_promptly(
    wire_proxy: Proxy, wire: WireServers, user: str, host: str, reason: str, framing: str
) -> None:
    """Inside an intercepted social tunnel, a blocked upload is cut off within seconds."""
    head, piece = FRAMINGS[framing]
    wire.clear()
    tls = intercepted(wire_proxy, f"{host}:443", user)
    port = tls.getsockname()[1]
    tls.sendall(upload_head("/upload", host, head))
    elapsed, _, closed = trickle(tls, piece)
    tls.close()
    assert closed
    assert elapsed < CLOSE_WITHIN, elapsed
    assert wire.settle() == b""
    rec = record_by_port(wire_proxy, port)
    assert rec["event"]["reason"] == reason
    assert rec["socialgate"]["enforcement"] == "killed"


def test_blocked_http2_upload_stream_is_reset_promptly(
    wire_proxy: Proxy, wire: WireServers
) -> None:
    """An HTTP/2 upload stream to a blocked site is reset at once; nothing goes upstream."""
    wire.clear()
    tls = intercepted(wire_proxy, "www.facebook.com:443", "carol", alpn=["h2"])
    headers = [
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "www.facebook.com"),
        (":path", "/upload"),
    ]
    conn = h2_start(tls, headers, end_stream=False)
    tls.settimeout(0.1)
    start = time.monotonic()
    ended = False
    while not ended and time.monotonic() - start < 6:
        try:
            conn.send_data(1, b"u" * 100)
            tls.sendall(conn.data_to_send())
            data = tls.recv(65536)
        except TimeoutError:
            continue
        except (OSError, ssl.SSLError, h2.exceptions.StreamClosedError):
            break
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.StreamReset | h2.events.StreamEnded):
                ended = True
    elapsed = time.monotonic() - start
    tls.close()
    assert elapsed < CLOSE_WITHIN
    assert wire.settle() == b""


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_blocked_streamed_upload_is_closed_promptly(
    streaming_proxy: Proxy, wire: WireServers, framing: str
) -> None:
    """With stream_large_bodies set, a killed streamed upload is closed at once too."""
    head, piece = FRAMINGS[framing]
    wire.clear()
    sock = proxy_socket(streaming_proxy)
    auth = f"Proxy-Authorization: {basic('carol')}\r\n"
    sock.sendall(upload_head("http://www.facebook.com/upload", "www.facebook.com", head, auth))
    elapsed, _, closed = trickle(sock, piece)
    sock.close()
    assert closed
    assert elapsed < CLOSE_WITHIN
    assert wire.settle() == b""


def test_small_blocked_post_still_gets_the_block_page(wire_proxy: Proxy, wire: WireServers) -> None:
    """A small form post (whole body sent at once) still gets the 403 page with its reference."""
    wire.clear()
    sock = proxy_socket(wire_proxy)
    auth = f"Proxy-Authorization: {basic('carol')}\r\n"
    body = b"status=hello"
    sock.sendall(
        upload_head(
            "http://www.facebook.com/post",
            "www.facebook.com",
            f"Content-Length: {len(body)}",
            auth + "Connection: close\r\n",
        )
        + body
    )
    data, _ = read_until_closed(sock)
    sock.close()
    assert data.startswith(b"HTTP/1.1 403")
    assert wire.settle() == b""
