"""What the gate saw of one access attempt, as the audit record takes it.

Only names, addresses, the method and the path (the query only when the
operator enabled it) are read from the flow: never bodies, cookies or
credentials, so they cannot reach the trail.
"""

from __future__ import annotations

from dataclasses import replace

from mitmproxy import connection, http

from proxy_addons.addons.identity import Source, client_source, flow_source
from proxy_addons.audit.record import Access
from proxy_addons.identity import Identity


def connection_access(
    identity: Identity,
    client: connection.Client | Source,
    *,
    stage: str,
    domain: str,
    port: int,
    scheme: str = "https",
    status: int | None = None,
) -> Access:
    """An attempt judged before any request was seen (CONNECT, ClientHello, raw TCP).

    ``client``: the connection (its tunnel's forwarded client, else its peer) or, for a
    request, where that request came from."""
    source = client if isinstance(client, Source) else client_source(client)
    return Access(
        user=identity.user,
        identity=identity.source,
        groups=identity.groups,
        source_ip=source.ip,
        source_port=source.port,
        forwarded_by=source.via,
        stage=stage,
        scheme=scheme,
        domain=domain,
        port=port,
        status_code=status,
    )


def connect_access(
    identity: Identity, flow: http.HTTPFlow, *, domain: str, status: int | None = None
) -> Access:
    """A tunnel's CONNECT request."""
    return connection_access(
        identity,
        flow_source(flow),
        stage="connect",
        domain=domain,
        port=flow.request.port,
        status=status,
    )


def _request(
    identity: Identity, flow: http.HTTPFlow, *, domain: str, method: str, status: int | None
) -> Access:
    """One request's connection facts and its method (no path yet)."""
    req = flow.request
    seen = connection_access(
        identity,
        flow_source(flow),
        stage="request",
        domain=domain,
        port=req.port,
        scheme=req.scheme,
        status=status,
    )
    return replace(seen, method=method)


def request_access(
    identity: Identity,
    flow: http.HTTPFlow,
    *,
    domain: str,
    log_query: bool,
    status: int | None = None,
) -> Access:
    """One request: the connection's facts plus its method and path (and query if logged)."""
    req = flow.request
    path, _, q = req.path.partition("?")
    seen = _request(identity, flow, domain=domain, method=req.method, status=status)
    return replace(seen, path=path, query=q if log_query and q else None)


def oversized_access(
    identity: Identity, flow: http.HTTPFlow, *, domain: str, status: int | None
) -> Access:
    """A request refused for its size: its method (which the record bounds) but never its
    path or query, so an oversized request target cannot grow the trail (the record keeps
    its size)."""
    return _request(identity, flow, domain=domain, method=flow.request.method, status=status)
