"""Local upstream servers (HTTP and HTTPS) that remember every request they receive."""

from __future__ import annotations

import http.server
import ssl
import threading
from dataclasses import dataclass, field


@dataclass
class Seen:
    method: str
    path: str
    host: str
    body: bytes


@dataclass
class Upstream:
    name: str
    port: int
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hosts(self) -> list[str]:
        with self.lock:
            return [r.host for r in self.requests]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.connections = 0


def _handler(up: Upstream) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with up.lock:
                up.connections += 1

        def _any(self) -> None:
            body = b""
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    body += self.rfile.read(size)
                    self.rfile.readline()
            elif n := int(self.headers.get("Content-Length") or 0):
                body = self.rfile.read(n)
            with up.lock:
                up.requests.append(
                    Seen(self.command, self.path, self.headers.get("Host", ""), body)
                )
            payload = f"upstream {up.name}: {self.command} {self.path}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Alt-Svc", 'h3=":443"; ma=86400')
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_HEAD = do_OPTIONS = do_DELETE = do_PATCH = _any

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class Servers:
    """An HTTP and an HTTPS upstream on 127.0.0.1, ephemeral ports."""

    def __init__(self, cert: str, key: str) -> None:
        self.http = Upstream("http", 0)
        self.https = Upstream("https", 0)
        self._servers: list[http.server.ThreadingHTTPServer] = []
        h = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.http))
        self.http.port = h.server_address[1]
        s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.https))
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        s.socket = ctx.wrap_socket(s.socket, server_side=True)
        self.https.port = s.server_address[1]
        for srv in (h, s):
            srv.daemon_threads = True
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            self._servers.append(srv)

    def clear(self) -> None:
        self.http.clear()
        self.https.clear()

    def close(self) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
