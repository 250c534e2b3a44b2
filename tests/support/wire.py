"""Upstreams that record the raw bytes they receive, to prove what reached a site.

The bypass tests assert on the wire, not on what the proxy says it did: an attempt is
refused only if no byte of it arrived here. Each accepted connection's bytes are kept
(after TLS, i.e. what the site's application would read). The first complete request
head on a connection is answered with a small 200 so that clients do not hang; reading
continues until the peer closes or stays idle, so a body sent later is recorded too.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

REPLY = b"raw upstream says hello\n"
_IDLE = 1.0  # seconds of silence after which a connection's recording is closed


@dataclass
class RawUpstream:
    """One listening socket on 127.0.0.1 that records every byte of every connection."""

    name: str
    tls: ssl.SSLContext | None = None
    port: int = 0
    conns: list[bytearray] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    # -- what arrived ---------------------------------------------------------------

    def received(self) -> bytes:
        """Every byte received so far, all connections concatenated."""
        with self.lock:
            return b"".join(bytes(c) for c in self.conns)

    def connections(self) -> int:
        with self.lock:
            return len(self.conns)

    def clear(self) -> None:
        with self.lock:
            self.conns.clear()

    def settle(self, seconds: float = 0.3) -> bytes:
        """What arrived once a little time has passed (bytes may still be in flight)."""
        time.sleep(seconds)
        return self.received()

    # -- serving --------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray()
        with self.lock:
            self.conns.append(buf)
        try:
            sock: socket.socket = conn
            if self.tls is not None:
                conn.settimeout(5)
                sock = self.tls.wrap_socket(conn, server_side=True)
            sock.settimeout(_IDLE)
            answered = False
            while True:
                try:
                    chunk = sock.recv(65536)
                except (TimeoutError, ssl.SSLError, OSError):
                    break
                if not chunk:
                    break
                with self.lock:
                    buf += chunk
                if not answered and b"\r\n\r\n" in buf:
                    answered = True
                    head = (
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(REPLY)
                    )
                    try:
                        sock.sendall(head + REPLY)
                    except OSError:
                        break
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._closed = True
        self._sock.close()


class WireServers:
    """A plain and a TLS raw upstream, shaped like `Servers` (``.http.port``, ``.https.port``)
    so `start_proxy` can send every server connection of a proxy to them."""

    def __init__(self, cert: str, key: str) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        self.http = RawUpstream("http")
        self.https = RawUpstream("https", tls=ctx)

    def received(self) -> bytes:
        """Every byte either upstream received."""
        return self.http.received() + self.https.received()

    def settle(self, seconds: float = 0.3) -> bytes:
        """What either upstream received once a little time has passed."""
        time.sleep(seconds)
        return self.received()

    def clear(self) -> None:
        self.http.clear()
        self.https.clear()

    def close(self) -> None:
        self.http.close()
        self.https.close()
