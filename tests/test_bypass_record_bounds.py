"""Bypass class 9 (record half): oversized input cannot inflate the audit trail."""

from __future__ import annotations

import json
import pathlib
import socket
import ssl
from collections.abc import Iterator

import pytest

from tests.support.client import connect_tunnel, proxy_auth, read_all, ref_of, status
from tests.support.policies import PASSWORD
from tests.support.proxy import Proxy, start_proxy
from tests.support.rawclient import record_by_port, records_by_port
from tests.support.wire import WireServers

pytestmark = pytest.mark.integration

PATH = "/" + "p" * (100 * 1024 - 1)  # a 100 KB path


def _line_of(proxy: Proxy, event_id: str) -> str:
    proxy.record(event_id)
    for line in proxy.audit_log.read_text().splitlines():
        if f'"id":"{event_id}"' in line:
            return line
    raise AssertionError(event_id)


def _send(sock: socket.socket, raw: bytes) -> bytes:
    sock.settimeout(5)
    sock.sendall(raw)
    data = read_all(sock)
    sock.close()
    return data


@pytest.fixture(scope="module")
def roomy_proxy(
    tmp_path_factory: pytest.TempPathFactory, policy_dir: pathlib.Path, wire: WireServers
) -> Iterator[Proxy]:
    """A proxy whose request-target limit (class 9a) lets a 100 KB URL reach the gate: with
    the default limit it is refused with 414 before any record names its path."""
    opts = ("--set", f"socialgate_max_request_target={1024 * 1024}")
    p = start_proxy(tmp_path_factory.mktemp("roomy"), policy_dir, wire, options=opts)  # type: ignore[arg-type]
    yield p
    p.stop()


def test_100kb_path_gives_a_small_record(roomy_proxy: Proxy, wire: WireServers) -> None:
    """A blocked 100 KB URL is recorded in a few KB, marked truncated with its length."""
    wire.clear()
    head = f"GET http://www.facebook.com{PATH} HTTP/1.1\r\n" + proxy_auth("carol")
    head += "Host: www.facebook.com\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", roomy_proxy.port), timeout=5)
    resp = _send(sock, head.encode())
    assert wire.settle() == b""
    assert status(resp) == 403
    line = _line_of(roomy_proxy, ref_of(resp))
    assert len(line) < 4096
    rec = roomy_proxy.record(ref_of(resp))
    assert rec["socialgate"]["truncated"] == {"url.path": len(PATH)}
    assert rec["url"]["path"].startswith("/ppp")
    assert rec["url"]["path"].endswith("...[truncated]")


def test_100kb_request_line_in_a_tunnel_is_refused_as_raw_tcp(
    roomy_proxy: Proxy, wire: WireServers
) -> None:
    """Inside intercepted TLS, a first read with no line end is taken for raw TCP by
    mitmproxy's next_layer: refused (class 4), nothing upstream, one small record."""
    wire.clear()
    raw, resp = connect_tunnel(roomy_proxy.port, "www.facebook.com:443", "carol", PASSWORD)
    assert b" 200 " in resp.split(b"\r\n", 1)[0]
    port = raw.getsockname()[1]
    ctx = ssl.create_default_context(cafile=str(roomy_proxy.ca))
    sock = ctx.wrap_socket(raw, server_hostname="www.facebook.com")
    head = f"GET {PATH} HTTP/1.1\r\nHost: www.facebook.com\r\nConnection: close\r\n\r\n"
    assert _send(sock, head.encode()) == b""
    assert wire.settle() == b""
    rec = record_by_port(roomy_proxy, port)
    assert len(records_by_port(roomy_proxy, port)) == 1
    assert rec["event"]["action"] == "connection-blocked"
    assert rec["socialgate"]["stage"] == "tcp"
    assert len(json.dumps(rec)) < 4096
