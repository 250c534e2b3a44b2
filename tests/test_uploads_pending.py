"""Which blocked requests are cut off rather than answered after their body (class 8)."""

from __future__ import annotations

import pytest
from mitmproxy.test import tutils

from proxy_addons.addons.uploads import BLOCK_PAGE_MAX_BODY, body_pending


@pytest.mark.parametrize(
    ("version", "method", "headers", "pending"),
    [
        # no body at all: answered with the block page
        ("HTTP/1.1", "GET", [], False),
        ("HTTP/1.1", "POST", [("content-length", "0")], False),
        ("HTTP/2.0", "GET", [], False),
        ("HTTP/2.0", "HEAD", [], False),
        # a small announced body: read, then the block page
        ("HTTP/1.1", "POST", [("content-length", "12")], False),
        ("HTTP/1.1", "POST", [("content-length", str(BLOCK_PAGE_MAX_BODY))], False),
        ("HTTP/2.0", "POST", [("content-length", "12")], False),
        # large, unbounded or unreadable: cut off
        ("HTTP/1.1", "POST", [("content-length", str(BLOCK_PAGE_MAX_BODY + 1))], True),
        ("HTTP/1.1", "PUT", [("content-length", "10000000")], True),
        ("HTTP/1.1", "POST", [("transfer-encoding", "chunked")], True),
        ("HTTP/1.1", "POST", [("transfer-encoding", "gzip, chunked")], True),
        ("HTTP/1.1", "POST", [("content-length", "bogus")], True),
        ("HTTP/1.1", "POST", [("content-length", "-1")], True),
        ("HTTP/1.1", "POST", [("content-length", "10"), ("content-length", "99999999")], True),
        ("HTTP/1.1", "POST", [("content-length", "10, 20")], True),
        # HTTP/2 and HTTP/3 bodies need no length header
        ("HTTP/2.0", "POST", [], True),
        ("HTTP/3", "PATCH", [], True),
    ],
)
def test_body_pending(
    version: str, method: str, headers: list[tuple[str, str]], pending: bool
) -> None:
    """Bodies a client may keep sending for long are cut off; small ones get the page."""
    req = tutils.treq(method=method.encode(), http_version=version.encode(), content=b"")
    req.headers.clear()
    for k, v in headers:
        req.headers.add(k, v)
    assert body_pending(req) is pending
