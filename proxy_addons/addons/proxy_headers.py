"""Headers addressed to the proxy never travel upstream.

mitmproxy's proxyauth removes ``Proxy-Authorization`` only from the request it authenticates.
Requests it trusts by connection (inside a CONNECT tunnel, or from a host the policy names
by address) keep whatever the client put there, and mitmproxy forwards it: a member of
staff's directory password would reach the social network (or any site). This addon drops
every ``Proxy-Authorization`` and ``Proxy-Connection`` field from every request, social or
not, in ``requestheaders`` (before any byte goes upstream, also for streamed bodies).
The address headers a balancer addresses to the proxy (`forwarding.ADDRESS_HEADERS`) are
`ForwardedFor`'s to read and strip from the head; the trailers of both kinds are cleaned here.

In upstream-proxy mode mitmproxy's ``upstream_auth`` adds the operator's own credentials
for the next proxy to plain-HTTP requests; those are put back, as mitmproxy would send them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from mitmproxy import ctx, http

from proxy_addons.forwarding import ADDRESS_HEADERS

logger = logging.getLogger(__name__)

PROXY_HEADERS = ("proxy-authorization", "proxy-connection")


def strip_fields(headers: http.Headers, names: Iterable[str]) -> bool:
    """Remove every field of those names, whatever their case; whether any was there."""
    found = False
    for name in names:
        if name in headers:
            del headers[name]  # every field of that name
            found = True
    return found


def strip_proxy_headers(headers: http.Headers) -> bool:
    """Remove every field addressed to the proxy; whether any was there."""
    return strip_fields(headers, PROXY_HEADERS)


class ProxyHeaders:
    """Fail closed: if the headers cannot be cleaned, the request is killed."""

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        try:
            if strip_proxy_headers(flow.request.headers):
                upstream_auth = ctx.master.addons.get("upstreamauth")
                if upstream_auth is not None and upstream_auth.auth:
                    upstream_auth.requestheaders(flow)  # the operator's, for the next proxy
        except Exception:
            logger.exception("socialgate: cannot remove proxy headers; killing the request")
            flow.kill()

    def request(self, flow: http.HTTPFlow) -> None:
        # Trailers of a buffered body go out with it (streamed ones cannot be recalled).
        try:
            if flow.request.trailers is not None:
                strip_fields(flow.request.trailers, (*PROXY_HEADERS, *ADDRESS_HEADERS))
        except Exception:
            logger.exception("socialgate: cannot clean request trailers; killing the request")
            flow.kill()
