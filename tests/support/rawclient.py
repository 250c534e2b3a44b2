"""Raw-socket helpers for the bypass tests: talk to the proxy byte by byte and time its closes."""

from __future__ import annotations

import base64
import socket
import ssl
import time
from typing import Any

import h2.connection
import h2.events

from tests.support.client import connect_tunnel
from tests.support.policies import PASSWORD
from tests.support.proxy import Proxy


def basic(user: str, password: str = PASSWORD) -> str:
    """The value of a Basic credentials header."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def read_until_closed(
    sock: socket.socket | ssl.SSLSocket, timeout: float = 5
) -> tuple[bytes, bool]:
    """Everything the proxy sends until it closes; ``(data, closed)`` (False: still open)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return data, False
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        pass
    return data, True


def exchange(
    sock: socket.socket | ssl.SSLSocket, payload: bytes, timeout: float = 5
) -> tuple[bytes, bool]:
    """Send ``payload``, read until the proxy closes, then close; ``(data, closed)``."""
    sock.sendall(payload)
    try:
        return read_until_closed(sock, timeout)
    finally:
        sock.close()


def h2_start(
    tls: ssl.SSLSocket, headers: list[tuple[str, str]], *, end_stream: bool
) -> h2.connection.H2Connection:
    """An HTTP/2 connection over ``tls`` whose stream 1 is opened with ``headers`` (sent)."""
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    conn.send_headers(1, headers, end_stream=end_stream)
    tls.sendall(conn.data_to_send())
    return conn


def h2_get(tls: ssl.SSLSocket, authority: str, path: str, extra: list[tuple[str, str]]) -> int:
    """One HTTP/2 GET over an established TLS socket; returns the response status."""
    headers = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", authority),
        (":path", path),
        ("accept", "*/*"),
        *extra,
    ]
    conn = h2_start(tls, headers, end_stream=True)
    tls.settimeout(5)
    status = 0
    while data := tls.recv(65536):
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = int(dict(ev.headers)[b":status"])
            if isinstance(ev, h2.events.StreamEnded | h2.events.StreamReset):
                return status
        tls.sendall(conn.data_to_send())
    return status


def tunnel(proxy: Proxy, target: str, user: str | None) -> socket.socket:
    """An established CONNECT tunnel (asserts the proxy answered 200)."""
    sock, head = connect_tunnel(proxy.port, target, user, PASSWORD)
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def intercepted(
    proxy: Proxy, target: str, user: str | None, *, alpn: list[str] | None = None
) -> ssl.SSLSocket:
    """A CONNECT tunnel with TLS to the proxy (trusting its CA), SNI = target's host."""
    sock = tunnel(proxy, target, user)
    ctx = ssl.create_default_context(cafile=str(proxy.ca))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx.wrap_socket(sock, server_hostname=target.rsplit(":", 1)[0])


def proxy_socket(proxy: Proxy, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(
        ("127.0.0.1", proxy.port), timeout=10, source_address=(source, 0)
    )


def record_by_port(proxy: Proxy, port: int, timeout: float = 5) -> dict[str, Any]:
    """The access record of the attempt made from client port ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in proxy.access_records():
            if r["source"].get("port") == port:
                return r
        time.sleep(0.05)
    raise AssertionError(f"no access record from client port {port}")


def records_by_port(proxy: Proxy, port: int) -> list[dict[str, Any]]:
    return [r for r in proxy.access_records() if r["source"].get("port") == port]
