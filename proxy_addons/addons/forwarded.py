"""The real client address behind a trusted load balancer, and address headers never sent on.

Option ``socialgate_trusted_proxies``: the balancers (addresses or CIDR networks) whose
``X-Forwarded-For`` is believed (`proxy_addons.forwarding`, Squid's follow_x_forwarded_for).
A plain request is attributed on its own header; a CONNECT's header gives the address
of the whole tunnel (the balancer cannot see inside it, so whatever a request in the
tunnel says is the client's own and is ignored). The address goes to
``flow.metadata[CLIENT_KEY]`` and `connection_sources` (`proxy_addons.addons.identity`),
from where source-address identity and every record read it.

From a trusted balancer, a request whose header does not name a client is refused with
400 (recorded as ``bad-forwarded-for`` when it is social): fail closed, never "the
balancer's address". ``X-Forwarded-For``, ``Forwarded`` and ``X-Real-IP`` are removed
from every request head before anything goes upstream (from trailers: `ProxyHeaders`), so
neither an internal address nor a client's spoofed one reaches a site or a next proxy.

This addon runs after mitmproxy's proxyauth and before every socialgate addon.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import replace
from typing import Any

from mitmproxy import connection, ctx, exceptions, http

from proxy_addons.addons.access import connection_access, request_access
from proxy_addons.addons.conn_state import names_of_request
from proxy_addons.addons.enforce import must_kill
from proxy_addons.addons.gate import Gate
from proxy_addons.addons.identity import (
    CLIENT_KEY,
    Source,
    connection_sources,
    let_source_address_in,
    peer_ip,
    scrub_password,
)
from proxy_addons.addons.proxy_headers import strip_fields
from proxy_addons.audit.record import new_ref
from proxy_addons.decide import Outcome, Reason, decide
from proxy_addons.forwarding import (
    ADDRESS_HEADERS,
    Refusal,
    TrustedProxies,
    forwarded_client,
    parse_trusted,
)
from proxy_addons.identity import resolve

logger = logging.getLogger(__name__)

OPTION = "socialgate_trusted_proxies"


def strip_address_headers(headers: http.Headers) -> None:
    strip_fields(headers, ADDRESS_HEADERS)


def record_refusal(gate: Gate, flow: http.HTTPFlow, killed: bool) -> str | None:
    """Record a balancer's request refused for its X-Forwarded-For if it is social; the
    record's reference (None: not social, nothing recorded). The client is unknown: the
    record's ``source.ip`` is the balancer's."""
    policy = gate.store.require()
    scrub_password(flow)
    auth = flow.metadata.get("proxyauth")
    identity = resolve(policy, str(auth[0]) if auth and auth[0] else None, None)
    req = flow.request
    connect = req.method == "CONNECT"
    state = gate.conns.get(flow.client_conn)
    names = [req.host] if connect else names_of_request(state, req)
    d = decide(policy, identity.user, names, None if connect else req.method, gate.clock())
    if not d.social:
        return None
    d = replace(d, outcome=Outcome.BLOCKED, reason=Reason.BAD_FORWARDED_FOR)
    balancer = peer_ip(flow.client_conn)
    status = None if killed else 400
    if connect:
        source = Source(balancer, None, balancer)
        seen = connection_access(
            identity, source, stage="connect", domain=d.host, port=req.port, status=status
        )
    else:
        seen = request_access(
            identity, flow, domain=d.host, log_query=gate.audit.log_query, status=status
        )
        seen = replace(seen, source_ip=balancer, source_port=None, forwarded_by=balancer)
    if state is not None:
        state.pending = None  # this record supersedes the connection's
    ref = new_ref()
    gate.audit.submit_nowait(gate.build_record(d, seen, ref, "killed" if killed else "refused"))
    flow.metadata["socialgate"] = {"outcome": "blocked", "ref": ref, "reason": str(d.reason)}
    return ref


class ForwardedFor:
    """Finds each flow's client address; refuses what a trusted balancer does not attribute."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.trusted = TrustedProxies()
        # Connections whose CONNECT was answered 2xx: every later flow on them is the tunnel's.
        self.tunnels: weakref.WeakSet[connection.Client] = weakref.WeakSet()
        self._warned: set[Refusal] = set()

    def load(self, loader: Any) -> None:
        loader.add_option(
            OPTION,
            str,
            "",
            """
            socialgate: load balancers whose X-Forwarded-For is believed: comma-separated IP
            addresses or CIDR networks (IPv4, IPv6). From them a request without a usable
            X-Forwarded-For is refused (400). Empty: trust nobody, the TCP peer is the client.
            """,
        )

    def configure(self, updated: set[str]) -> None:
        if OPTION in updated:
            value = getattr(ctx.options, OPTION)
            try:
                self.trusted = parse_trusted(value)
            except ValueError as e:
                raise exceptions.OptionsError(f"{OPTION}={value!r}: {e}") from None

    def client_connected(self, client: connection.Client) -> None:
        # A balancer's connection has no client address of its own until a request says:
        # never the balancer's (it must not match identity.source_addresses at connect).
        peer = peer_ip(client)
        if self.trusted.trusts(peer):
            connection_sources[client] = Source("", None, peer)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._guarded(flow, self._attribute, True)

    def http_connected(self, flow: http.HTTPFlow) -> None:
        self.tunnels.add(flow.client_conn)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._guarded(flow, self._request)

    # -- per flow ---------------------------------------------------------------------

    def _guarded(self, flow: http.HTTPFlow, step: Any, *args: Any) -> None:
        if flow.error or not flow.live:
            return
        try:
            step(flow, *args)
        except Exception:
            logger.exception("socialgate: cannot tell where a request comes from; killing it")
            flow.kill()

    def _request(self, flow: http.HTTPFlow) -> None:
        client = flow.client_conn
        if client in self.tunnels:
            # Inside a tunnel: the CONNECT said who; the request's own headers are the client's.
            source = connection_sources.get(client)
            if source is not None and source.via is not None:
                flow.metadata[CLIENT_KEY] = (source.ip, source.via)
            strip_address_headers(flow.request.headers)
        elif not self._attribute(flow, False):
            return
        policy = self.gate.store.current
        if policy is not None and source_address_behind_balancer(flow):
            # proxyauth challenged a host the policy names by the address the balancer gave.
            let_source_address_in(policy, flow)

    def _attribute(self, flow: http.HTTPFlow, connect: bool) -> bool:
        """Note where ``flow`` comes from and strip the address headers; False: refused."""
        client = flow.client_conn
        peer = peer_ip(client)
        headers = flow.request.headers
        found = forwarded_client(peer, headers.get_all("x-forwarded-for"), self.trusted)
        strip_address_headers(headers)
        if isinstance(found, Refusal):
            self._refuse(flow, found)
            return False
        ip, forwarded = found
        if forwarded:
            flow.metadata[CLIENT_KEY] = (ip, peer)
            if connect:
                connection_sources[client] = Source(ip, None, peer)
        return True

    def _refuse(self, flow: http.HTTPFlow, why: Refusal) -> None:
        peer = peer_ip(flow.client_conn)
        if why not in self._warned:
            self._warned.add(why)
            logger.warning(
                "socialgate: refusing requests from trusted proxy %s with %s X-Forwarded-For "
                "(logged once per kind; check the balancer adds it to every request)",
                peer,
                why,
            )
        killed = flow.request.method != "CONNECT" and must_kill(flow.request)
        ref = record_refusal(self.gate, flow, killed)
        if killed:
            flow.kill()
            return
        text = f"400 Bad Request: the load balancer's X-Forwarded-For is {why}.\n"
        headers = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}
        if ref is not None:
            headers["X-Socialgate-Ref"] = ref
            text += f"Reference: {ref}\n"
        flow.response = http.Response.make(400, text.encode(), headers)


def source_address_behind_balancer(flow: http.HTTPFlow) -> bool:
    """Whether proxyauth challenged a flow whose address a balancer vouched for."""
    resp = flow.response
    return resp is not None and resp.status_code == 407 and bool(flow.metadata.get(CLIENT_KEY))
