"""Bench-only mitmdump addon: a fake resolver that sends every name to the local origins.

There is no DNS here. Rewriting ``server.address`` in ``server_connect`` would
work for one request, but mitmproxy then no longer recognises the upstream
connection as the one for the request's host (``connection_spec_matches``
compares addresses) and opens a new connection for every plain-HTTP request,
which is not what production traffic does. Answering name resolution instead
keeps mitmproxy's own behaviour intact: port 80 goes to the plain origin, port
443 to the TLS origin, both on 127.0.0.1. Loaded the same way into bare
mitmdump and socialgate so both sides pay the same.

It also writes the proxy's listening port to ``bench_port_file`` (we listen on
port 0, so only the process knows it).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from mitmproxy import ctx


class BenchResolver:
    def load(self, loader: Any) -> None:
        loader.add_option("bench_http_port", int, 0, "Local port of the plain HTTP origin.")
        loader.add_option("bench_https_port", int, 0, "Local port of the TLS origin.")
        loader.add_option("bench_port_file", str, "", "Where to write the listening port.")

    def running(self) -> None:
        loop = asyncio.get_running_loop()
        routes = {80: ctx.options.bench_http_port, 443: ctx.options.bench_https_port}

        async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            target = routes.get(int(port)) if port is not None else None
            if not target:
                raise socket.gaierror(socket.EAI_NONAME, f"bench resolver: no route for {port}")
            return [
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", target))
            ]

        loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]
        if ctx.options.bench_port_file:
            addrs = ctx.master.addons.get("proxyserver").listen_addrs()
            port = next(a[1] for a in addrs if a[0] in ("127.0.0.1", "::ffff:127.0.0.1"))
            tmp = Path(ctx.options.bench_port_file + ".tmp")
            tmp.write_text(str(port))
            tmp.replace(ctx.options.bench_port_file)


addons = [BenchResolver()]
