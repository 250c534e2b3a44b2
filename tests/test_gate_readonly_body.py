"""The gate judges an HTTP/2-3 read-only request's body before anything goes upstream."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.gate_hooks import Parts, parts, policy_file, run, social_flow

__all__ = ["parts", "policy_file"]  # fixtures


def h2_read(method: str = "GET") -> Any:
    f = social_flow("dana", method=method)
    f.request.http_version = "HTTP/2.0"
    del f.request.headers["content-length"]
    f.request.content = b""
    return f


def test_h2_read_waits_for_its_body(parts: Parts) -> None:
    """At requestheaders an HTTP/2 read-only GET is neither answered nor recorded yet."""
    g, sink, _ = parts
    f = h2_read()
    run(g.requestheaders(f))
    assert (f.response, f.error, sink.records) == (None, None, [])


@pytest.mark.parametrize(
    ("body", "trailers", "allowed"),
    [
        (b"", False, True),
        (b"status=posted", False, False),
        (b"", True, False),
    ],
)
def test_h2_body_decided_in_request_hook(
    parts: Parts, body: bytes, trailers: bool, allowed: bool
) -> None:
    """Once buffered, a body (or trailers) refuses the read; none lets it go, recorded."""
    g, sink, _ = parts
    f = h2_read()
    run(g.requestheaders(f))
    f.request.content = body
    if trailers:
        f.request.trailers = {"x-post": "1"}
    run(g.request(f))
    rec = sink.records[-1]
    if allowed:
        assert f.response is None
        assert rec["event"]["action"] == "request-allowed"
    else:
        assert f.response is not None
        assert f.response.status_code == 403
        assert (rec["event"]["reason"], rec["socialgate"]["writes"]) == ("read-only", ["body"])
    assert len(sink.records) == 1


def test_h2_read_refused_when_body_may_stream(parts: Parts) -> None:
    """With stream_large_bodies a buffered body may go upstream hook-less: refuse and kill."""
    g, sink, tctx = parts
    tctx.options.stream_large_bodies = "1k"
    f = h2_read()
    run(g.requestheaders(f))
    assert f.response is None
    assert f.error is not None
    rec = sink.records[-1]
    assert (rec["event"]["reason"], rec["socialgate"]["enforcement"]) == ("read-only", "killed")


def test_http1_read_is_decided_at_once(parts: Parts) -> None:
    """HTTP/1 headers settle the body: the allowed read is recorded at requestheaders."""
    g, sink, _ = parts
    f = social_flow("dana")
    del f.request.headers["content-length"]
    run(g.requestheaders(f))
    assert sink.records[-1]["event"]["action"] == "request-allowed"


def test_http1_read_with_length_is_refused(parts: Parts) -> None:
    """An HTTP/1 GET that declares a body is refused at requestheaders."""
    g, sink, _ = parts
    f = social_flow("dana")
    assert f.request.headers["content-length"] != "0"
    run(g.requestheaders(f))
    assert f.response is not None
    assert sink.records[-1]["socialgate"]["writes"] == ["body"]
