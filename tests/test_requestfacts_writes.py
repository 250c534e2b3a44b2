"""What a request writes (requestfacts.writes) and how a read-only exemption judges it."""

from __future__ import annotations

import datetime as dt
import pathlib

import pytest

from proxy_addons.decide import Outcome, Reason, decide
from proxy_addons.policy.load import load_policy
from proxy_addons.policy.model import Policy
from proxy_addons.requestfacts import Write, body_known, writes
from tests.support.policies import write_policy

H = list[tuple[str, str]]


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        # reading
        ("GET", [], ()),
        ("head", [("Accept", "*/*")], ()),
        ("OPTIONS", [("Content-Length", "0")], ()),
        ("GET", [("Connection", "keep-alive")], ()),
        # methods that write
        ("POST", [], (Write.METHOD,)),
        ("PROPFIND", [], (Write.METHOD,)),
        ("CONNECT", [], (Write.METHOD,)),
        # upgrades: any Upgrade header, any value, any count, any spelling
        ("GET", [("Upgrade", "websocket")], (Write.UPGRADE,)),
        ("GET", [("Upgrade", "websocket, h2c")], (Write.UPGRADE,)),
        ("GET", [("upgrade", " WebSocket ")], (Write.UPGRADE,)),
        ("GET", [("Upgrade", "h2c")], (Write.UPGRADE,)),
        ("GET", [("Upgrade", "")], (Write.UPGRADE,)),
        ("GET", [("Upgrade", "a"), ("UPGRADE", "websocket")], (Write.UPGRADE,)),
        ("GET", [("Upgrade ", "x")], (Write.UPGRADE,)),
        ("GET", [("Connection", "keep-alive, Upgrade")], (Write.CONNECTION_UPGRADE,)),
        ("GET", [("connection", " UPGRADE ")], (Write.CONNECTION_UPGRADE,)),
        ("CONNECT", [(":protocol", "websocket")], (Write.METHOD, Write.EXTENDED_CONNECT)),
        # method overrides
        ("GET", [("X-HTTP-Method-Override", "POST")], (Write.METHOD_OVERRIDE,)),
        ("GET", [("x-http-method", "DELETE")], (Write.METHOD_OVERRIDE,)),
        ("GET", [("X-Method-Override", "PUT")], (Write.METHOD_OVERRIDE,)),
        ("GET", [("X_HTTP_METHOD_OVERRIDE", "PUT")], (Write.METHOD_OVERRIDE,)),
        ("GET", [("x-http-method-override", "GET")], (Write.METHOD_OVERRIDE,)),
        # bodies
        ("GET", [("Content-Length", "5")], (Write.BODY,)),
        ("GET", [("Content-Length", "0"), ("Content-Length", "0")], (Write.BODY,)),
        ("GET", [("Content-Length", "abc")], (Write.BODY,)),
        ("GET", [("Content-Length", "-1")], (Write.BODY,)),
        ("GET", [("Content-Length", "0, 0")], (Write.BODY,)),
        ("GET", [("Transfer-Encoding", "chunked")], (Write.BODY,)),
        ("GET", [("Transfer-Encoding", "identity")], (Write.BODY,)),
        ("GET", [("Content-Length", " 0 ")], ()),
    ],
)
def test_writes(method: str, headers: H, expected: tuple[Write, ...]) -> None:
    """Each way a request can write is found from its method and header lines."""
    assert writes(method, headers) == expected


@pytest.mark.parametrize(
    ("end_stream", "expected"),
    [
        (True, ()),
        (None, ()),
        (False, (Write.BODY,)),
    ],
)
def test_end_stream(end_stream: bool | None, expected: tuple[Write, ...]) -> None:
    """An HTTP/2-3 request whose headers did not end the stream has a body."""
    assert writes("GET", [], end_stream=end_stream) == expected


def test_all_reasons_in_order() -> None:
    """Several reasons are all reported, in a stable order."""
    got = writes("POST", [("Upgrade", "h2c"), ("X-HTTP-Method", "PUT"), ("Content-Length", "1")])
    assert got == (Write.METHOD, Write.METHOD_OVERRIDE, Write.BODY, Write.UPGRADE)


@pytest.mark.parametrize(
    ("version", "end_stream", "known"),
    [
        ("HTTP/1.1", None, True),
        ("HTTP/1.0", None, True),
        ("HTTP/2.0", None, False),
        ("HTTP/3", None, False),
        ("HTTP/2.0", True, True),
    ],
)
def test_body_known(version: str, end_stream: bool | None, known: bool) -> None:
    """Only HTTP/1 headers (or a known END_STREAM) settle whether a body follows."""
    assert body_known(version, end_stream) is known


# -- the decision ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    d: pathlib.Path = tmp_path_factory.mktemp("policy")
    return load_policy(str(write_policy(d)))


NOW = dt.datetime.now(dt.UTC)


@pytest.mark.parametrize(
    ("method", "found"),
    [
        ("GET", (Write.UPGRADE,)),
        ("GET", (Write.CONNECTION_UPGRADE,)),
        ("GET", (Write.METHOD_OVERRIDE,)),
        ("HEAD", (Write.BODY,)),
        ("OPTIONS", (Write.BODY, Write.UPGRADE)),
    ],
)
def test_read_only_refuses_writes(policy: Policy, method: str, found: tuple[Write, ...]) -> None:
    """A read-only exemption refuses a reading method that writes, and says how it writes."""
    d = decide(policy, "dana", ["www.facebook.com"], method, NOW, writes=found)
    assert (d.outcome, d.reason, d.exemption_id) == (
        Outcome.BLOCKED,
        Reason.READ_ONLY,
        "EX-2026-002",
    )
    assert d.writes == found


def test_read_only_names_the_method(policy: Policy) -> None:
    """A refused method is named among the writes."""
    d = decide(policy, "dana", ["x.com"], "POST", NOW)
    assert d.writes == (Write.METHOD,)


def test_read_only_allows_plain_reads(policy: Policy) -> None:
    """A read with nothing that writes is allowed."""
    d = decide(policy, "dana", ["x.com"], "GET", NOW, writes=())
    assert (d.allowed, d.writes) == (True, ())


def test_full_access_ignores_writes(policy: Policy) -> None:
    """A full exemption allows writing."""
    d = decide(policy, "alice", ["x.com"], "GET", NOW, writes=(Write.UPGRADE, Write.BODY))
    assert d.allowed
