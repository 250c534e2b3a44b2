"""Who a flow belongs to: its proxyauth user or the source address it comes from.

Hosts the policy names in ``identity.source_addresses`` need not answer
proxyauth's challenge: they are let in under their mapped name. The
plaintext password that proxyauth leaves in ``flow.metadata`` is scrubbed
here before any other addon can save it (saved flows, the web UI).
"""

from __future__ import annotations

from mitmproxy import connection, ctx, http

from proxy_addons.identity import Identity, address_user, canonical_ip, resolve
from proxy_addons.policy.model import Policy


def peer_ip(client: connection.Client) -> str:
    return canonical_ip(str(client.peername[0]) if client.peername else "")


def source_address_user(policy: Policy, client: connection.Client) -> str | None:
    return address_user(policy, peer_ip(client))


def identify(policy: Policy, flow: http.HTTPFlow) -> Identity:
    """The identity of a flow: the proxyauth user wins, then the source address."""
    auth = flow.metadata.get("proxyauth")
    auth_user = str(auth[0]) if auth and auth[0] else None
    return resolve(policy, auth_user, source_address_user(policy, flow.client_conn))


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
    user = source_address_user(policy, flow.client_conn)
    if user is None:
        return False
    flow.response = None
    flow.metadata["proxyauth"] = (user, "")
    return True
