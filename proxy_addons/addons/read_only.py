"""Read-only enforcement on mitmproxy requests: the gate's side of `requestfacts`.

`requestfacts.writes` judges a request on its method and headers. For HTTP/1 that is the
whole story: a request body exists only if Content-Length or Transfer-Encoding says so.
HTTP/2 and HTTP/3 requests may carry DATA with no length header, and mitmproxy 12 does not
tell addons at ``requestheaders`` whether the client's headers ended the stream (the
``end_stream`` flag of its RequestHeaders event is not kept on the flow). So a read-only
request on those protocols is held (`BodyChecks`) and decided again in the ``request``
hook, which mitmproxy calls once the whole body is buffered and before anything of the
request is sent upstream.

That holds only while the body is buffered. With ``stream_large_bodies`` set, mitmproxy
switches a buffered body that grows past the limit to streaming, sending the headers and
the body upstream without calling another hook; such requests cannot be judged in time and
are refused as possible writes (fail closed).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import replace

from mitmproxy import ctx, http
from mitmproxy.utils import human

from proxy_addons.decide import Decision, Outcome, Reason
from proxy_addons.identity import Identity
from proxy_addons.policy.model import Access
from proxy_addons.requestfacts import Write, body_known, writes

logger = logging.getLogger(__name__)

# The gate's per-request enforcement (record, then let through or block), and its
# fail-closed block for a request whose check raised.
Enforce = Callable[[http.HTTPFlow, Decision, Identity], Awaitable[None]]
FailClosed = Callable[[http.HTTPFlow], None]


def request_writes(request: http.Request) -> tuple[Write, ...]:
    """Why this request writes, from its method and every header line (repeats included)."""
    return writes(request.method, request.headers.items(multi=True))


def refuse_body(d: Decision) -> Decision:
    """The decision for a read-only request found to carry (or to be able to carry) a body."""
    found = set(d.writes) | {Write.BODY}
    return replace(
        d,
        outcome=Outcome.BLOCKED,
        reason=Reason.READ_ONLY,
        writes=tuple(w for w in Write if w in found),
    )


def needs_body_check(request: http.Request, d: Decision) -> bool:
    """Whether an allowed read-only request's body is still unknown at requestheaders."""
    return d.allowed and d.access is Access.READ_ONLY and not body_known(request.http_version)


def can_switch_to_streaming() -> bool:
    """Whether mitmproxy may stream a buffered body upstream without another hook."""
    return human.parse_size(ctx.options.stream_large_bodies) is not None


def has_body(request: http.Request) -> bool:
    """Whether a buffered request carried any body byte or trailer."""
    return bool(request.raw_content) or bool(request.trailers)


class BodyChecks:
    """Read-only requests held at ``requestheaders`` until their body is buffered."""

    def __init__(self, enforce: Enforce, fail_closed: FailClosed) -> None:
        self._enforce = enforce
        self._fail_closed = fail_closed
        self._waiting: weakref.WeakKeyDictionary[http.HTTPFlow, tuple[Decision, Identity]] = (
            weakref.WeakKeyDictionary()
        )

    def hold(self, flow: http.HTTPFlow, d: Decision, identity: Identity) -> Decision | None:
        """Hold ``flow`` for the ``request`` hook (None), or the decision refusing it now
        when mitmproxy could stream its body on unseen (the flow must then be killed)."""
        if can_switch_to_streaming():
            return refuse_body(d)
        self._waiting[flow] = (d, identity)
        return None

    async def request(self, flow: http.HTTPFlow) -> None:
        """mitmproxy's ``request`` hook: a held request, its body buffered, nothing sent."""
        held = self._waiting.pop(flow, None)
        if held is None or flow.response or flow.error or not flow.live:
            return
        d, identity = held
        try:
            await self._enforce(flow, refuse_body(d) if has_body(flow.request) else d, identity)
        except Exception:
            logger.exception("socialgate: error deciding request to %s", flow.request.pretty_host)
            self._fail_closed(flow)
