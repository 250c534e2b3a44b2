"""How the addons stop or answer a flow: pages as responses, and records written first.

An allowed access is only let through once its record is written; if the
audit trail cannot take it, the access is refused instead (`record_first`).
A blocked request whose body mitmproxy may stream, or whose body would keep the
client uploading until it was read (`proxy_addons.addons.uploads`), is killed
rather than answered with a page (`must_kill`). A request whose names cannot be
judged and hold nothing social is refused with a plain 400 (`refuse_invalid_name`).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from mitmproxy import ctx, http
from mitmproxy.utils import human

from proxy_addons.addons.uploads import body_pending
from proxy_addons.audit.record import Record
from proxy_addons.audit.trail import AccessAudit
from proxy_addons.decide import Decision, Outcome, Reason
from proxy_addons.errors import AuditUnavailable
from proxy_addons.pages.render import Page

logger = logging.getLogger(__name__)

INVALID_NAME_PAGE = Page(
    b"400 Bad Request: the request names a host that is not a valid host name "
    b"(malformed port, control or other characters a host name cannot contain, empty label, "
    b"or too long).\n",
    "text/plain; charset=utf-8",
)


def page_response(
    status: int, page: Page, cache_control: str, headers: dict[str, str] | None = None
) -> http.Response:
    return http.Response.make(
        status,
        page.content,
        {"Content-Type": page.content_type, "Cache-Control": cache_control, **(headers or {})},
    )


def refuse_invalid_name(flow: http.HTTPFlow, *, streams: bool) -> None:
    """Answer 400 (unrecorded: nothing social is in the names), or kill a streaming flow."""
    if streams:
        flow.kill()
        return
    flow.response = page_response(400, INVALID_NAME_PAGE, "no-store")


async def record_first(audit: AccessAudit, record: Record, d: Decision, what: str) -> Decision:
    """``d`` once ``record`` is written, or ``d`` blocked as audit-unavailable if it cannot be.

    ``what`` names the failure in the log (e.g. ``blocking x.com``).
    """
    try:
        await audit.submit(record)
    except AuditUnavailable as e:
        logger.error("socialgate: %s: %s", what, e)
        return replace(d, outcome=Outcome.BLOCKED, reason=Reason.AUDIT_UNAVAILABLE)
    return d


def may_stream(request: http.Request) -> bool:
    """Whether mitmproxy streams (or may yet start streaming) this request's body.

    Chunked bodies are buffered first and switched to streaming once they pass
    ``stream_large_bodies``, so they must be judged before the first byte arrives.
    """
    if request.stream:
        return True
    limit = human.parse_size(ctx.options.stream_large_bodies)
    if limit is None:
        return False
    if "chunked" in request.headers.get("transfer-encoding", "").lower():
        return True
    length = request.headers.get("content-length")
    if length is not None:
        try:
            return int(length) > limit
        except ValueError:
            return True
    # HTTP/2 and HTTP/3 bodies need no length header, on any method (a GET may carry DATA),
    # and whether the headers ended the stream is not shown to addons.
    return not request.http_version.startswith("HTTP/1")


def must_kill(request: http.Request) -> bool:
    """Whether a blocked (or refused) request is killed rather than answered with a page."""
    return may_stream(request) or body_pending(request)
