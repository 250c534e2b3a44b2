"""Refusing a request whose names cannot be judged and hold nothing social (400, unrecorded)."""

from __future__ import annotations

from mitmproxy import http

INVALID_NAME_TEXT = (
    b"400 Bad Request: the request names a host that is not a valid host name "
    b"(malformed port, control or other characters a host name cannot contain, empty label, "
    b"or too long).\n"
)


def refuse_invalid_name(flow: http.HTTPFlow, *, streams: bool) -> None:
    """Answer 400, or kill the flow when its body may already be streaming upstream."""
    if streams:
        flow.kill()
        return
    flow.response = http.Response.make(
        400,
        INVALID_NAME_TEXT,
        {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"},
    )
