"""What the gate learns about one client connection, and the names its flows show.

A tunnel is judged on its CONNECT target and its TLS SNI as sent: mitmproxy reports no
SNI when the extension holds an invalid name or several names, yet a passed-through
connection delivers them to the server, so the gate reads them itself (`raw_sni`). Each
request is judged on its tunnel's names and its own (`proxy_addons.flownames`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mitmproxy import http, tls

from proxy_addons.audit.record import Record
from proxy_addons.flownames import raw_sni, request_names
from proxy_addons.identity import ANONYMOUS, Identity


@dataclass(slots=True)
class ConnState:
    """What the gate learnt about one client connection (a CONNECT tunnel)."""

    connect_host: str | None = None
    connect_port: int = 443
    sni: str | None = None
    sni_names: tuple[str, ...] = ()  # raw SNI names when mitmproxy found none valid
    identity: Identity = ANONYMOUS
    failed: bool = False  # a hook raised: every request on this connection is blocked
    # A connection-level block, written at disconnect unless a request record replaced it,
    # so one attempt gives one record.
    pending: Record | None = None

    def saw_client_hello(self, hello: tls.ClientHello) -> None:
        self.sni = hello.sni
        if self.sni is None:
            self.sni_names = tuple(raw_sni(hello.raw_bytes(False)))

    def names(self) -> list[str | None]:
        """The names the connection itself shows: CONNECT target, SNI (or the raw SNI names)."""
        return [self.connect_host, self.sni, *self.sni_names]


def names_of_request(state: ConnState | None, req: http.Request) -> list[str | None]:
    """Every name that can steer ``req``: its tunnel's, then its own (each Host header too)."""
    tunnel = state if state is not None and state.connect_host is not None else None
    return request_names(
        connect_host=tunnel.connect_host if tunnel else None,
        sni=tunnel.sni if tunnel else None,
        sni_names=tunnel.sni_names if tunnel else (),
        request_host=req.host,
        authority=req.authority,
        host_headers=req.headers.get_all("host"),
    )
