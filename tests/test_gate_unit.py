"""The gate addon's hooks, with mitmproxy's test helpers (no network)."""

from __future__ import annotations

import datetime as dt
import pathlib

import pytest
from mitmproxy import connection, exceptions
from mitmproxy.addons import proxyserver
from mitmproxy.test import taddons, tflow, tutils

from proxy_addons.addons import gate as gate_module
from proxy_addons.addons.gate import Gate
from proxy_addons.addons.limits import record_refusal
from proxy_addons.addons.policy_store import PolicyStore
from proxy_addons.limits import Violation
from tests.support.fake_audit import FakeAuditTrail
from tests.support.gate_hooks import Parts, parts, policy_file, run, social_flow

__all__ = ["parts", "policy_file"]  # fixtures

NOW = dt.datetime.now(dt.UTC)


# -- enforcement ----------------------------------------------------------------------


def test_blocked_request_gets_block_page_and_record(parts: Parts) -> None:
    """A blocked request gets a 403 page whose reference is the record's event.id."""
    g, sink, _ = parts
    f = social_flow("carol")
    run(g.requestheaders(f))
    assert f.response is not None
    assert f.response.status_code == 403
    (rec,) = sink.records
    assert rec["event"]["id"] == f.response.headers["x-socialgate-ref"]
    assert rec["event"]["id"].encode() in f.response.content


def test_allowed_request_is_recorded_before_it_goes(parts: Parts) -> None:
    """An allowed request passes only after its record was accepted by the sink."""
    g, sink, _ = parts
    f = social_flow("alice", "x.com")
    run(g.requestheaders(f))
    assert f.response is None
    assert sink.records[-1]["event"]["action"] == "request-allowed"


def test_audit_failure_blocks_allowed_request(parts: Parts) -> None:
    """If the record of an allowed request cannot be written, the request is blocked."""
    g, sink, _ = parts
    sink.fail = True
    f = social_flow("alice", "x.com")
    run(g.requestheaders(f))
    assert f.response is not None
    assert f.response.status_code == 403
    assert b"could not be written" in f.response.content


def test_streamed_body_is_killed(parts: Parts) -> None:
    """A blocked request whose body streams is killed, not answered (nothing goes upstream)."""
    g, sink, _ = parts
    f = social_flow("carol", method="POST")
    f.request.stream = True
    run(g.requestheaders(f))
    assert f.response is None
    assert f.error is not None
    assert sink.records[-1]["socialgate"]["enforcement"] == "killed"


def test_password_is_scrubbed_from_flow(parts: Parts) -> None:
    """The plaintext password proxyauth leaves in flow.metadata is removed."""
    g, _, _ = parts
    f = social_flow("carol", "www.example.org")
    run(g.requestheaders(f))
    assert f.metadata["proxyauth"] == ("carol", "")


@pytest.mark.parametrize(
    "flow_state",
    ["response", "error", "not-live"],
)
def test_guard_skips_finished_flows(parts: Parts, flow_state: str) -> None:
    """Flows that already have a response, an error, or are not live are left alone."""
    g, sink, _ = parts
    f = social_flow("carol")
    if flow_state == "response":
        f.response = tutils.tresp()
    elif flow_state == "error":
        f.error = tflow.terr()
    else:
        f.live = False
    run(g.requestheaders(f))
    assert sink.records == []


# -- fail closed ----------------------------------------------------------------------


def test_exception_in_decision_blocks(parts: Parts, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception while deciding blocks the flow (mitmproxy alone would let it pass)."""
    g, sink, _ = parts

    def boom(*args: object, **kwargs: object) -> None:
        raise ValueError("bug")

    monkeypatch.setattr(gate_module, "decide", boom)
    f = social_flow("alice", "x.com")
    run(g.requestheaders(f))
    assert f.response is not None
    assert f.response.status_code == 403
    assert b"blocked to be safe" in f.response.content
    assert sink.records[-1]["event"]["reason"] == "error"


def test_exception_at_clienthello_intercepts_and_blocks(
    parts: Parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error at the ClientHello never passes the connection through; its requests block."""
    g, _, _ = parts
    client = tflow.tclient_conn()

    class Hello:
        sni = "x.com"

    class Ctx:
        def __init__(self) -> None:
            self.client = client
            self.server = connection.Server(address=("x.com", 443))

    class Data:
        context = Ctx()
        client_hello = Hello()
        ignore_connection = False

    monkeypatch.setattr(gate_module, "decide", lambda *a, **k: 1 / 0)
    data = Data()
    g.tls_clienthello(data)  # type: ignore[arg-type]
    assert data.ignore_connection is False
    monkeypatch.undo()
    f = social_flow("alice", "x.com")
    f.client_conn = client
    run(g.requestheaders(f))
    assert f.response is not None
    assert f.response.status_code == 403


def test_no_policy_blocks(policy_file: pathlib.Path) -> None:
    """Without a policy in force every decided flow is blocked."""
    g = Gate(PolicyStore(), FakeAuditTrail())
    with taddons.context(g, proxyserver.Proxyserver()):
        f = social_flow("alice", "www.example.org")
        run(g.requestheaders(f))
    assert f.response is not None
    assert f.response.status_code == 403


# -- options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "ok"),
    [
        ("regular", True),
        ("upstream:http://127.0.0.1:3128", True),
        ("transparent", False),
        ("wireguard", False),
        ("reverse:https://example.org", False),
        ("local", False),
    ],
)
def test_supported_modes(parts: Parts, mode: str, ok: bool) -> None:
    """Only the forward-proxy modes are accepted; the error names the option and value."""
    g, _, tctx = parts
    if ok:
        tctx.configure(g, mode=[mode])
    else:
        with pytest.raises(exceptions.OptionsError, match=f"mode={mode}"):
            tctx.configure(g, mode=[mode])


def test_connection_strategy_forced_lazy(policy_file: pathlib.Path) -> None:
    """An eager connection strategy is replaced by lazy (no upstream before the decision)."""
    g = Gate(PolicyStore(), FakeAuditTrail())
    with taddons.context(g, proxyserver.Proxyserver()) as tctx:
        tctx.configure(g, connection_strategy="eager")
        assert tctx.options.connection_strategy == "lazy"


@pytest.mark.parametrize(
    ("limit", "headers", "version", "method", "killed"),
    [
        # no streaming configured: a chunked body has no bound, so waiting for it before the
        # block page would leave the client uploading (issue 10, class 8): killed
        ("", {"transfer-encoding": "chunked"}, "HTTP/1.1", "POST", True),
        # streaming configured: a body that is or may become streamed is killed
        ("1k", {"transfer-encoding": "chunked"}, "HTTP/1.1", "POST", True),
        ("1k", {"content-length": "5000"}, "HTTP/1.1", "POST", True),
        ("1k", {"content-length": "bogus"}, "HTTP/1.1", "POST", True),
        ("1k", {"content-length": "10"}, "HTTP/1.1", "POST", False),
        ("1k", {}, "HTTP/1.1", "GET", False),
        ("1k", {}, "HTTP/2.0", "POST", True),
        ("1k", {}, "HTTP/2.0", "GET", True),  # HTTP/2: a GET may carry DATA too
    ],
)
def test_blocked_body_that_may_stream_is_killed(
    parts: Parts,
    limit: str,
    headers: dict[str, str],
    version: str,
    method: str,
    killed: bool,
) -> None:
    """Bodies mitmproxy may stream are killed; others get the block page."""
    g, sink, tctx = parts
    tctx.options.stream_large_bodies = limit or None
    f = social_flow("carol", method=method)
    f.request.http_version = version
    del f.request.headers["content-length"]
    f.request.headers.update(headers)
    run(g.requestheaders(f))
    assert (f.response is None) is killed
    assert sink.records[-1]["socialgate"]["enforcement"] == ("killed" if killed else "block-page")


# -- requests refused over a size limit (RequestLimits records through the gate) ------------

TOO_LONG = Violation("socialgate_max_request_target", 10_001, 8192, 414, "URI Too Long")


@pytest.mark.parametrize(
    ("killed", "enforcement", "status"), [(False, "refused", 414), (True, "killed", None)]
)
def test_oversized_social_request_is_recorded_without_its_path(
    parts: Parts, killed: bool, enforcement: str, status: int | None
) -> None:
    """A social refusal is recorded as request-too-large with the limit, never the path."""
    g, sink, _ = parts
    f = social_flow("carol")
    f.request.path = "/" + "a" * 10_000
    ref = record_refusal(g, f, TOO_LONG, killed)
    (rec,) = sink.records
    assert rec["event"]["id"] == ref == f.metadata["socialgate"]["ref"]
    assert rec["event"]["reason"] == "request-too-large"
    assert rec["socialgate"]["enforcement"] == enforcement
    assert rec["socialgate"]["limit"] == {
        "option": "socialgate_max_request_target",
        "size": 10_001,
        "limit": 8192,
    }
    assert "path" not in rec["url"]
    assert rec.get("http", {}).get("response", {}).get("status_code") == status


def test_oversized_non_social_request_is_not_recorded(parts: Parts) -> None:
    """Refusing a non-social request leaves no record and no reference."""
    g, sink, _ = parts
    assert record_refusal(g, social_flow("carol", "www.example.org"), TOO_LONG, False) is None
    assert sink.records == []
