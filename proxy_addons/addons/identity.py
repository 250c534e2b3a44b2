"""Who a flow belongs to: its proxyauth user or the source address it comes from.

Hosts the policy names in ``identity.source_addresses`` need not answer
proxyauth's challenge: they are let in under their mapped name. The
plaintext password that proxyauth leaves in ``flow.metadata`` is scrubbed
here before any other addon can save it (saved flows, the web UI).

Where a flow comes from (`Source`) is the TCP peer, unless the peer is a trusted
load balancer: then `proxy_addons.addons.forwarded` puts the client address it
vouched for in ``flow.metadata[CLIENT_KEY]`` (each request) and `connection_sources`
(a tunnel's CONNECT), and everything here and in the records reads it from there.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from mitmproxy import connection, ctx, http

from proxy_addons.identity import Identity, address_user, canonical_ip, resolve
from proxy_addons.policy.model import Policy

# flow.metadata key: (client address, the trusted proxy's address) when forwarded.
CLIENT_KEY = "socialgate_client"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a flow comes from, as the audit record shows it."""

    ip: str
    port: int | None  # None when forwarded: the client's own port is not known
    via: str | None = None  # the trusted proxy that vouched for ``ip``


# A connection from a trusted proxy has the address its CONNECT vouched for (or none yet).
# mitmproxy gives a connection no place of its own for this, so it is kept here, keyed by
# the live connection object.
connection_sources: weakref.WeakKeyDictionary[connection.Client, Source] = (
    weakref.WeakKeyDictionary()
)


def peer_ip(client: connection.Client) -> str:
    return canonical_ip(str(client.peername[0]) if client.peername else "")


def client_source(client: connection.Client) -> Source:
    """Where a connection comes from: its tunnel's forwarded client, else its TCP peer."""
    source = connection_sources.get(client)
    if source is not None:
        return source
    return Source(peer_ip(client), int(client.peername[1]) if client.peername else 0)


def flow_source(flow: http.HTTPFlow) -> Source:
    """Where a request (or CONNECT) comes from."""
    seen = flow.metadata.get(CLIENT_KEY)
    if seen and seen[1]:
        return Source(str(seen[0]), None, str(seen[1]))
    return client_source(flow.client_conn)


def source_address_user(policy: Policy, client: connection.Client) -> str | None:
    return address_user(policy, client_source(client).ip)


def identify(policy: Policy, flow: http.HTTPFlow) -> Identity:
    """The identity of a flow: the proxyauth user wins, then the source address."""
    auth = flow.metadata.get("proxyauth")
    auth_user = str(auth[0]) if auth and auth[0] else None
    return resolve(policy, auth_user, address_user(policy, flow_source(flow).ip))


def scrub_password(flow: http.HTTPFlow) -> None:
    """Drop the plaintext password proxyauth leaves in the flow (saved flows, web UI)."""
    auth = flow.metadata.get("proxyauth")
    if auth and auth[1]:
        flow.metadata["proxyauth"] = (auth[0], "")


def authenticate_by_address(policy: Policy | None, client: connection.Client) -> None:
    """At connect: a host named in the policy counts as proxyauth-authenticated."""
    proxyauth = ctx.master.addons.get("proxyauth")
    if policy is None or proxyauth is None or proxyauth.validator is None:
        return
    user = source_address_user(policy, client)
    if user is not None:
        proxyauth.authenticated[client] = (user, "")


def let_source_address_in(policy: Policy, flow: http.HTTPFlow) -> bool:
    """Undo proxyauth's 407 for a host the policy identifies by its address."""
    resp = flow.response
    if resp is None or resp.status_code != 407:
        return False
    user = address_user(policy, flow_source(flow).ip)
    if user is None:
        return False
    flow.response = None
    flow.metadata["proxyauth"] = (user, "")
    return True
