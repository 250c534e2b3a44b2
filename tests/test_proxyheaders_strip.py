"""Proxy credentials and proxy-only headers are dropped from every request (class 7)."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.addons import upstream_auth
from mitmproxy.proxy import mode_specs
from mitmproxy.test import taddons, tflow

from proxy_addons.addons.proxy_headers import ProxyHeaders, strip_proxy_headers


@pytest.mark.parametrize(
    ("fields", "left"),
    [
        # one field, any case
        ([("Proxy-Authorization", "Basic Ym9iOnB3")], []),
        ([("proxy-authorization", "Basic Ym9iOnB3")], []),
        ([("PROXY-AUTHORIZATION", "Negotiate abc")], []),
        # repeated fields, and the legacy keep-alive header meant for proxies
        ([("Proxy-Authorization", "a"), ("proxy-authorization", "b")], []),
        ([("Proxy-Connection", "keep-alive")], []),
        # the site's own credentials and other headers are kept
        (
            [("Authorization", "Bearer t"), ("Proxy-Authorization", "x")],
            [("Authorization", "Bearer t")],
        ),
        ([("X-Proxy-Authorization", "kept")], [("X-Proxy-Authorization", "kept")]),
    ],
)
def test_strip_proxy_headers(fields: list[tuple[str, str]], left: list[tuple[str, str]]) -> None:
    """Every Proxy-Authorization / Proxy-Connection field goes; nothing else does."""
    headers = http.Headers([(k.encode(), v.encode()) for k, v in fields])
    strip_proxy_headers(headers)
    assert list(headers.items(multi=True)) == left


def test_addon_strips_request_headers() -> None:
    """The addon cleans a request in requestheaders, before anything goes upstream."""
    f = tflow.tflow()
    f.request.headers["Proxy-Authorization"] = "Basic Ym9iOnB3"
    with taddons.context(ProxyHeaders()) as tctx:
        tctx.master.addons.get("proxyheaders").requestheaders(f)
    assert "proxy-authorization" not in f.request.headers
    assert f.error is None


def test_addon_strips_request_trailers() -> None:
    """Trailers of a buffered body are cleaned too."""
    f = tflow.tflow()
    f.request.trailers = http.Headers(proxy_authorization="Basic Ym9iOnB3", x_kept="1")
    ProxyHeaders().request(f)
    assert f.request.trailers is not None
    assert list(f.request.trailers.keys()) == ["x-kept"]


def test_addon_strips_address_headers_from_trailers() -> None:
    """A client cannot smuggle a forwarded address upstream in trailers either."""
    f = tflow.tflow()
    f.request.trailers = http.Headers(
        x_forwarded_for="192.0.2.7", forwarded="for=192.0.2.7", x_real_ip="192.0.2.7", x_kept="1"
    )
    ProxyHeaders().request(f)
    assert f.request.trailers is not None
    assert list(f.request.trailers.keys()) == ["x-kept"]


def test_upstream_proxy_credentials_are_put_back() -> None:
    """In upstream mode, the operator's upstream_auth for the next proxy survives the strip."""
    ua = upstream_auth.UpstreamAuth()
    addon = ProxyHeaders()
    with taddons.context(ua, addon) as tctx:
        tctx.configure(ua, upstream_auth="op:secret")
        f = tflow.tflow()
        f.client_conn.proxy_mode = mode_specs.ProxyMode.parse("upstream:http://next:3128")
        f.request.scheme = "http"
        ua.requestheaders(f)  # `socialgate run` order: upstream_auth first
        f.request.headers.add("Proxy-Authorization", "Basic c3RhZmY6cHc=")
        addon.requestheaders(f)
    assert f.request.headers.get_all("proxy-authorization") == [ua.auth.decode()]  # type: ignore[union-attr]


def test_failure_kills_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the headers cannot be cleaned, the request is killed (fail closed)."""

    def boom(_: object) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setattr("proxy_addons.addons.proxy_headers.strip_proxy_headers", boom)
    f = tflow.tflow()
    with taddons.context(ProxyHeaders()):
        ProxyHeaders().requestheaders(f)
    assert f.error is not None
