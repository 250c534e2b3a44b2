"""A raw CONNECT client, for what httpx cannot do: pick the SNI apart from Host,
look at the certificate the server presented, keep one HTTP/2 connection open; and
the raw-response helpers of the bypass tests (status, reference, read to the end)."""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl

import h2.config
import h2.connection
from cryptography import x509
from cryptography.x509.oid import NameOID
from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset

from tests.support.policies import PASSWORD


def proxy_auth(user: str, password: str = PASSWORD) -> str:
    """The Proxy-Authorization header line (CRLF included) for ``user``."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Proxy-Authorization: Basic {token}\r\n"


def read_all(sock: socket.socket | ssl.SSLSocket) -> bytes:
    """Everything received until the peer closes, errs or goes quiet past the timeout."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ssl.SSLError, OSError):
        pass
    return data


def status(raw: bytes) -> int:
    """The status code of a raw HTTP/1 response (0: no response)."""
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0


def ref_of(raw: bytes) -> str:
    """The X-Socialgate-Ref of a raw HTTP/1 response (the block page's reference)."""
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"x-socialgate-ref":
            return v.strip().decode()
    raise AssertionError(f"no reference in {raw[:300]!r}")


def _read_head(sock: socket.socket) -> bytes:
    resp = b""
    while b"\r\n\r\n" not in resp:
        chunk = sock.recv(4096)
        if not chunk:
            break
        resp += chunk
    return resp


def plain_get(proxy_port: int, url: str, host: str, *, source: str = "127.0.0.1") -> bytes:
    """One absolute-form GET through the proxy from ``source``; returns the raw response."""
    sock = socket.create_connection(
        ("127.0.0.1", proxy_port), timeout=10, source_address=(source, 0)
    )
    head = f"GET {url} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\n"
    sock.sendall((head + "Connection: close\r\n\r\n").encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return data


def connect_tunnel(
    proxy_port: int,
    target: str,
    user: str | None = None,
    password: str = PASSWORD,
    *,
    source: str = "127.0.0.1",
) -> tuple[socket.socket, bytes]:
    """Open a CONNECT tunnel; returns the socket and the proxy's response head."""
    sock = socket.create_connection(
        ("127.0.0.1", proxy_port), timeout=10, source_address=(source, 0)
    )
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if user:
        head += proxy_auth(user, password)
    sock.sendall((head + "\r\n").encode())
    return sock, _read_head(sock)


def tls_request(
    proxy_port: int,
    target: str,
    sni: str | None,
    host_header: str,
    ctx: ssl.SSLContext,
    *,
    user: str | None = None,
    method: str = "GET",
    path: str = "/",
    source: str = "127.0.0.1",
) -> tuple[bytes, str]:
    """CONNECT to ``target``, TLS with ``sni``, one HTTP/1.1 request with ``host_header``.

    Returns the raw response and the issuer CN of the certificate presented.
    """
    sock, resp = connect_tunnel(proxy_port, target, user, source=source)
    if b" 200 " not in resp.split(b"\r\n", 1)[0]:
        sock.close()
        return resp, ""
    ctx.check_hostname = False
    tls = ctx.wrap_socket(sock, server_hostname=sni)
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    issuer = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    tls.sendall(
        f"{method} {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: text/html\r\n"
        f"Connection: close\r\nContent-Length: 0\r\n\r\n".encode()
    )
    data = b""
    try:
        while chunk := tls.recv(65536):
            data += chunk
    except (ssl.SSLError, OSError):
        pass
    tls.close()
    return data, str(issuer)


class H2Client:
    """One HTTP/2 connection through the proxy's CONNECT tunnel (httpx prefers HTTP/1.1)."""

    def __init__(self, proxy_port: int, host: str, user: str, password: str, ca: str) -> None:
        sock, head = connect_tunnel(proxy_port, f"{host}:443", user, password)
        assert b" 200 " in head.split(b"\r\n", 1)[0], head
        ctx = ssl.create_default_context(cafile=ca)
        ctx.set_alpn_protocols(["h2"])
        self.tls = ctx.wrap_socket(sock, server_hostname=host)
        assert self.tls.selected_alpn_protocol() == "h2"
        self.host = host
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.tls.sendall(self.conn.data_to_send())

    def get(self, path: str) -> int:
        """Send GET on a new stream of the same connection; return the response status."""
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            sid,
            [(":method", "GET"), (":authority", self.host), (":scheme", "https"),
             (":path", path)],
            end_stream=True,
        )  # fmt: skip
        self.tls.sendall(self.conn.data_to_send())
        status = 0
        while True:
            data = self.tls.recv(65536)
            assert data, "connection closed"
            for ev in self.conn.receive_data(data):
                if isinstance(ev, ResponseReceived) and ev.stream_id == sid:
                    status = int(dict(ev.headers)[b":status"])
                elif isinstance(ev, DataReceived):
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, StreamEnded | StreamReset) and ev.stream_id == sid:
                    self.tls.sendall(self.conn.data_to_send())
                    return status
            self.tls.sendall(self.conn.data_to_send())

    def close(self) -> None:
        self.tls.close()


def client_hello(sni: bytes) -> bytes:
    """A TLS ClientHello record, as sent on the wire, whose SNI extension holds ``sni`` as is.

    Python's ssl sends only valid host names: the hello is made for a placeholder of the
    same length and ``sni`` (at least 5 bytes) is swapped in.
    """
    placeholder = ("z" * (len(sni) - 4) + ".org").encode()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=placeholder.decode())
    with contextlib.suppress(ssl.SSLWantReadError):  # the ClientHello is out, no ServerHello
        tls.do_handshake()
    hello = outgoing.read()
    assert hello.count(placeholder) == 1
    return hello.replace(placeholder, sni)
