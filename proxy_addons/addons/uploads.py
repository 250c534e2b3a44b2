"""Blocked uploads are cut off, not waited for.

When an addon answers a request in ``requestheaders`` (the block page), mitmproxy 12 still
reads the whole request body before it sends the answer, and it first sends
``100 Continue`` when the client asked for it. A blocked video upload therefore keeps the
client uploading into the proxy (and the proxy buffering it) until the client gives up.

So a blocked request whose body is large, of unknown length or not yet framed is killed
instead: mitmproxy then closes the HTTP/1 connection at once (an HTTP/2 stream is reset),
never invites the body and never opens a server connection. Only a small body with a
Content-Length, which a client sends in one go, is read and answered with the block page.
"""

from __future__ import annotations

from mitmproxy import http

# Up to this many body bytes, a blocked request is read and answered with the block page
# (a form post, a small JSON call). 64 KiB is what a client has usually sent along with the
# headers (one TCP window), so the page comes back without waiting on the client.
BLOCK_PAGE_MAX_BODY = 64 * 1024

_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})


def body_pending(request: http.Request, limit: int = BLOCK_PAGE_MAX_BODY) -> bool:
    """Whether answering this request would mean waiting for a body of unbounded size.

    True for chunked bodies, Content-Length above ``limit`` or unreadable, and HTTP/2 and
    HTTP/3 requests that may carry a body without announcing its length.
    """
    te = request.headers.get_all("transfer-encoding")
    if te:
        return True
    lengths = request.headers.get_all("content-length")
    if lengths:
        try:
            sizes = {int(v.strip()) for value in lengths for v in value.split(",")}
        except ValueError:
            return True
        return len(sizes) != 1 or not 0 <= sizes.pop() <= limit
    if request.http_version.startswith("HTTP/1"):
        return False  # HTTP/1 without either header has no body
    return request.method.upper() not in _BODYLESS
