"""Bypass class 9 (request limits): oversized requests are refused before anything goes
upstream, on both sides of each limit, over plain HTTP, intercepted TLS and HTTP/2."""

from __future__ import annotations

import json
import pathlib

import pytest

from tests.support.proxy import Proxy, start_proxy
from tests.support.rawclient import (
    basic,
    exchange,
    h2_get,
    intercepted,
    proxy_socket,
    record_by_port,
    records_by_port,
)
from tests.support.wire import WireServers

pytestmark = pytest.mark.integration

TARGET = 8 * 1024
FIELDS = 100
FIELD = 16 * 1024
BLOCK = 64 * 1024


def head(path: str, host: str, *, fields: int = 3, field_size: int = 0, big: int = 0) -> bytes:
    """A GET whose forwarded head has exactly ``fields`` fields (Host, Accept, Connection and
    fillers); ``big`` of the fillers are ``field_size`` bytes long ("name: value")."""
    lines = [f"Host: {host}", "Accept: */*", "Connection: close"]
    for i in range(fields - 3):
        name = f"X-F{i:04d}"
        if i < big:
            lines.append(f"{name}: " + "v" * (field_size - len(name) - 2))
        else:
            lines.append(f"{name}: 1")
    return (f"GET {path} HTTP/1.1\r\n" + "".join(x + "\r\n" for x in lines) + "\r\n").encode()


def plain(proxy: Proxy, raw: bytes, user: str = "carol") -> tuple[bytes, int]:
    """Send one absolute-form request (credentials added); the response and client port."""
    first, rest = raw.split(b"\r\n", 1)
    method, target, version = first.split(b" ")
    host = raw.split(b"Host: ", 1)[1].split(b"\r\n", 1)[0]
    absolute = b"http://" + host + target
    auth = f"Proxy-Authorization: {basic(user)}\r\n".encode()
    sock = proxy_socket(proxy)
    port = sock.getsockname()[1]
    data, _ = exchange(sock, b" ".join([method, absolute, version]) + b"\r\n" + auth + rest)
    return data, port


def in_tls(proxy: Proxy, host: str, raw: bytes, user: str) -> tuple[bytes, int]:
    tls = intercepted(proxy, f"{host}:443", user)
    port = tls.getsockname()[1]
    data, _ = exchange(tls, raw)
    return data, port


# What `build` makes a request head of: path, fields, field_size, big fillers.
Spec = dict[str, str | int]

# within the limit / one over it, the status and the option that says so
CASES: dict[str, tuple[Spec, Spec, int, str]] = {
    "target": (
        dict(path="/" + "a" * (TARGET - 1)),
        dict(path="/" + "a" * TARGET),
        414,
        "socialgate_max_request_target",
    ),
    "fields": (
        dict(fields=FIELDS),
        dict(fields=FIELDS + 1),
        431,
        "socialgate_max_header_fields",
    ),
    "field-size": (
        dict(fields=4, field_size=FIELD, big=1),
        dict(fields=4, field_size=FIELD + 1, big=1),
        431,
        "socialgate_max_header_field_size",
    ),
    # 3 + 4 fillers of 16000: the block is 64 KiB minus a little / plus a little
    "block": (
        dict(fields=7, field_size=(BLOCK - 200) // 4, big=4),
        dict(fields=8, field_size=(BLOCK - 200) // 4, big=5),
        431,
        "socialgate_max_header_block",
    ),
}


def build(host: str, spec: Spec) -> bytes:
    path = str(spec.get("path", "/limits"))
    return head(
        path,
        host,
        fields=int(spec.get("fields", 3)),
        field_size=int(spec.get("field_size", 0)),
        big=int(spec.get("big", 0)),
    )


# -- non-social traffic: refused over the limit, never recorded -------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_non_social_within_limit_is_forwarded(
    wire_proxy: Proxy, wire: WireServers, case: str
) -> None:
    """A request exactly at a limit still reaches the site."""
    within, _, _, _ = CASES[case]
    wire.clear()
    data, _ = plain(wire_proxy, build("www.example.org", within))
    assert data.startswith(b"HTTP/1.1 200"), data[:100]
    assert wire.http.settle().startswith(b"GET /")


@pytest.mark.parametrize("case", sorted(CASES))
def test_non_social_over_limit_is_refused_unrecorded(
    wire_proxy: Proxy, wire: WireServers, case: str
) -> None:
    """One byte or field over a limit: refused, nothing upstream, no record."""
    _, over, status, _ = CASES[case]
    wire.clear()
    data, port = plain(wire_proxy, build("www.example.org", over))
    assert data.startswith(b"HTTP/1.1 %d" % status), data[:100]
    assert wire.settle() == b""
    assert records_by_port(wire_proxy, port) == []


def test_hundred_kilobyte_url_is_refused(wire_proxy: Proxy, wire: WireServers) -> None:
    """The review's 100 KB URL gets 414 and goes nowhere."""
    wire.clear()
    data, _ = plain(wire_proxy, head("/?" + "q" * 100_000, "www.example.org"))
    assert data.startswith(b"HTTP/1.1 414")
    assert wire.settle() == b""


# -- social traffic: refused and recorded, without the oversized input --------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_social_over_limit_is_refused_and_recorded(
    wire_proxy: Proxy, wire: WireServers, case: str
) -> None:
    """An exempt user's oversized request in an intercepted tunnel: refused and recorded."""
    _, over, status, option = CASES[case]
    wire.clear()
    data, port = in_tls(wire_proxy, "x.com", build("x.com", over), "alice")
    assert data.startswith(b"HTTP/1.1 %d" % status), data[:100]
    assert wire.settle() == b""
    rec = record_by_port(wire_proxy, port)
    assert rec["event"]["action"] == "request-blocked"
    assert rec["event"]["reason"] == "request-too-large"
    assert rec["socialgate"]["limit"]["option"] == option
    assert rec["socialgate"]["enforcement"] == "refused"
    assert rec["user"]["name"] == "alice"
    assert len(json.dumps(rec)) < 4096  # the oversized input is not copied into the trail


@pytest.mark.parametrize("case", sorted(CASES))
def test_social_within_limit_is_allowed(wire_proxy: Proxy, wire: WireServers, case: str) -> None:
    """The same request at the limit is judged as usual (allowed for the exempt user)."""
    within, _, _, _ = CASES[case]
    wire.clear()
    data, _ = in_tls(wire_proxy, "x.com", build("x.com", within), "alice")
    assert data.startswith(b"HTTP/1.1 200"), data[:100]
    assert wire.https.settle().startswith(b"GET /")


def test_plain_social_over_limit_is_recorded(wire_proxy: Proxy, wire: WireServers) -> None:
    """Over plain HTTP a blocked user's oversized request is recorded as request-too-large."""
    wire.clear()
    data, port = plain(wire_proxy, head("/" + "a" * TARGET, "www.facebook.com"))
    assert data.startswith(b"HTTP/1.1 414")
    assert wire.settle() == b""
    rec = record_by_port(wire_proxy, port)
    assert rec["event"]["reason"] == "request-too-large"
    assert "path" not in rec["url"]


def test_oversized_upload_is_killed(wire_proxy: Proxy, wire: WireServers) -> None:
    """An oversized request with a large body is cut off rather than read."""
    wire.clear()
    raw = head("/" + "a" * TARGET, "www.facebook.com").replace(
        b"Connection: close\r\n", b"Content-Length: 10000000\r\n"
    )
    data, port = plain(wire_proxy, raw + b"u" * 1000)
    assert not data.startswith(b"HTTP/1.1 200")
    assert wire.settle() == b""
    assert record_by_port(wire_proxy, port)["socialgate"]["enforcement"] == "killed"


# -- HTTP/2 ----------------------------------------------------------------------------------


def h2_status(proxy: Proxy, path: str, extra: list[tuple[str, str]]) -> int:
    tls = intercepted(proxy, "x.com:443", "alice", alpn=["h2"])
    try:
        return h2_get(tls, "x.com", path, extra)
    finally:
        tls.close()


@pytest.mark.parametrize(
    ("path", "extra", "status"),
    [
        ("/" + "a" * (TARGET - 1), [], 200),
        ("/" + "a" * TARGET, [], 414),
        ("/h2", [(f"x-f{i:04d}", "1") for i in range(FIELDS - 1)], 200),
        ("/h2", [(f"x-f{i:04d}", "1") for i in range(FIELDS)], 431),
    ],
)
def test_http2_limits(
    wire_proxy: Proxy, wire: WireServers, path: str, extra: list[tuple[str, str]], status: int
) -> None:
    """HTTP/2 requests are held to the same target and field-count limits."""
    wire.clear()
    assert h2_status(wire_proxy, path, extra) == status
    got = wire.https.settle()
    assert (got != b"") is (status == 200)


# -- configuration -----------------------------------------------------------------------------


def test_bad_limit_refuses_to_start(
    tmp_path: pathlib.Path, policy_dir: pathlib.Path, wire: WireServers
) -> None:
    """A limit outside its range stops the proxy at start, naming the option and value."""
    opts = ("--set", "socialgate_max_header_fields=5")
    try:
        p = start_proxy(tmp_path, policy_dir, wire, options=opts)  # type: ignore[arg-type]
    except RuntimeError as e:
        output = str(e)
    else:
        assert p.proc is not None
        code = p.proc.wait(10)
        p.stop()
        assert code != 0
        output = "".join(p.output)
    assert "socialgate_max_header_fields=5" in output
