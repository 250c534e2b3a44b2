"""The chain's one-pass seal gives exactly the line and hash of the two-pass definition."""

from __future__ import annotations

from typing import Any

import pytest

from proxy_addons.audit.chain import canonical, parse_line, record_hmac, seal, sealed_line
from proxy_addons.audit.sink import Renderer
from tests.support.audit_env import rec

KEY = b"k" * 32
PREV = "a" * 64


def chained(record: dict[str, Any], brk: dict[str, Any] | None = None) -> dict[str, Any]:
    chain: dict[str, Any] = {"worker": "w1", "seq": 7, "prev": PREV}
    if brk is not None:
        chain["break"] = brk
    return {**record, "socialgate": {**record.get("socialgate", {}), "chain": chain}}


def with_path(path: str) -> dict[str, Any]:
    r = rec(1)
    r["url"] = {"domain": "www.facebook.com", "path": path}
    return r


CASES = [
    # plain records
    rec(1),
    rec(2, user="Zoë O'Brien"),
    # values that spell the chain's own marker must not fool the splice
    with_path('/"chain":{"prev":"'),
    with_path('/x","socialgate":{"chain":{"prev":"' + "0" * 64),
    with_path("/\u2028\u0000\ud7ff"),
    # a namespace that sorts around "chain"
    {**rec(3), "socialgate": {"a": 1, "chaim": {"prev": "x"}, "zz": [1, 2]}},
    # another object spelled like the chain, before and after it: the two-pass path
    {**rec(4), "aaa": {"chain": {"prev": "q"}}},
    {**rec(5), "zzz": {"chain": {"prev": "q"}}},
]


@pytest.mark.parametrize("record", CASES)
def test_one_pass_equals_two_pass(record: dict[str, Any]) -> None:
    """The spliced line is the canonical form of the record sealed the slow way."""
    line, digest = sealed_line(KEY, chained(record))
    slow = seal(KEY, record, worker="w1", seq=7, prev=PREV)
    assert line == canonical(slow)
    assert digest == slow["socialgate"]["chain"]["hash"]
    parsed = parse_line(line)  # canonical, strict
    assert record_hmac(KEY, parsed) == digest


def test_break_record_takes_the_two_pass_path() -> None:
    """A chain with break (sorted before hash) still seals to the definition."""
    brk = {"reason": "torn-tail", "torn_bytes": 12}
    record = rec(1)
    line, digest = sealed_line(KEY, chained(record, brk))
    slow = seal(KEY, record, worker="w1", seq=7, prev=PREV, brk=brk)
    assert line == canonical(slow)
    assert digest == slow["socialgate"]["chain"]["hash"]


def test_renderer_lines_verify() -> None:
    """The writer's renderer produces lines whose HMAC verifies and that link up."""
    r = Renderer(KEY)
    prev = "0" * 64
    for seq in range(1, 4):
        data, digest = r.render(with_path(f"/p{seq}"), "w1", seq, prev)
        parsed = parse_line(data.decode().rstrip("\n"))
        assert parsed["socialgate"]["chain"] == {
            "worker": "w1",
            "seq": seq,
            "prev": prev,
            "hash": digest,
        }
        assert record_hmac(KEY, parsed) == digest
        prev = digest
