"""The raw-bytes upstreams really record what a proxy forwards (the bypass tests rely on it)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.proxy import Proxy
from tests.support.wire import REPLY, WireServers

pytestmark = pytest.mark.integration


def test_forwarded_request_is_recorded_byte_for_byte(wire_proxy: Proxy, wire: WireServers) -> None:
    """A non-social plain request arrives upstream with its body, and the reply comes back."""
    wire.clear()
    with httpx.Client(proxy=wire_proxy.url("carol"), timeout=10) as c:
        r = c.post("http://www.example.org/form", content=b"field=value")
    assert r.status_code == 200
    assert r.content == REPLY
    got = wire.http.settle()
    assert got.startswith(b"POST /form HTTP/1.1\r\n")
    assert got.endswith(b"\r\n\r\nfield=value")


def test_blocked_request_leaves_the_wire_empty(wire_proxy: Proxy, wire: WireServers) -> None:
    """A blocked social request opens no upstream connection at all."""
    wire.clear()
    with httpx.Client(proxy=wire_proxy.url("carol"), timeout=10) as c:
        r = c.get("http://www.facebook.com/")
    assert r.status_code == 403
    assert wire.settle() == b""
    assert wire.http.connections() == 0
