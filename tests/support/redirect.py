"""Test-only mitmproxy addon: there is no DNS here, so every server connection
goes to the local upstreams (port 443 → the HTTPS upstream, anything else → HTTP)."""

from __future__ import annotations

import os

from mitmproxy.proxy import server_hooks

HTTP_PORT = int(os.environ["SGTEST_HTTP_PORT"])
HTTPS_PORT = int(os.environ["SGTEST_HTTPS_PORT"])


class Redirect:
    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        address = data.server.address
        if address is None:
            return
        port = HTTPS_PORT if address[1] == 443 else HTTP_PORT
        data.server.address = ("127.0.0.1", port)


addons = [Redirect()]
