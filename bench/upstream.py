"""The origin servers behind the proxies: one plain HTTP and one HTTPS listener.

A bare asyncio protocol with a fixed response, so the origin costs a small
fraction of what the proxy under test costs and is never the bottleneck.
Run as ``python -m bench.upstream --cert C --key K``; prints ``http=PORT https=PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl

BODY = b"socialgate bench upstream: ok\n" * 8
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
HEAD_END = b"\r\n\r\n"


class Origin(asyncio.Protocol):
    """HTTP/1.1 keep-alive server: every request gets the same 200 response."""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        while True:
            end = self.buf.find(HEAD_END)
            if end == -1:
                return
            head = self.buf[:end].lower()
            skip = end + 4
            # Bodies only matter for write-method scenarios; honour Content-Length.
            i = head.find(b"\r\ncontent-length:")
            if i != -1:
                j = head.find(b"\r\n", i + 2)
                length = int(head[i + 17 : j if j != -1 else None])
                if len(self.buf) < skip + length:
                    return
                skip += length
            self.buf = self.buf[skip:]
            self.transport.write(RESPONSE)
            if b"\r\nconnection: close" in head:
                self.transport.close()
                return


async def serve(cert: str, key: str) -> None:
    loop = asyncio.get_running_loop()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    plain = await loop.create_server(Origin, "127.0.0.1", 0, backlog=1024)
    tls = await loop.create_server(Origin, "127.0.0.1", 0, ssl=ctx, backlog=1024)
    http_port = plain.sockets[0].getsockname()[1]
    https_port = tls.sockets[0].getsockname()[1]
    print(f"http={http_port} https={https_port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    plain.close()
    tls.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.cert, args.key))


if __name__ == "__main__":
    main()
