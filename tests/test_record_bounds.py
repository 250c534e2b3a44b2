"""Audit records keep a bounded amount of every attacker-controlled string (class 9b)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from proxy_addons.audit.bounds import LIMITS, TRUNCATED
from proxy_addons.audit.chain import parse_line, record_hmac
from proxy_addons.audit.record import Access, Record, access_record
from proxy_addons.audit.sink import Renderer
from proxy_addons.decide import Decision, Outcome, Reason

KEY = b"k" * 32
NOW = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)
DECISION = Decision(
    Outcome.BLOCKED, Reason.NO_EXEMPTION, "www.facebook.com", "social_networking", "facebook.com"
)


SEEN = Access(
    user="carol",
    identity="proxyauth",
    groups=(),
    source_ip="127.0.0.1",
    source_port=5000,
    stage="request",
    scheme="http",
    domain="www.facebook.com",
    port=80,
    method="GET",
    path="/",
)


def record(decision: Decision = DECISION, /, **seen: Any) -> Record:
    """The record of ``SEEN`` with the fields in ``seen`` replaced."""
    return access_record(
        decision, replace(SEEN, **seen), ref="SG-AAAAA-BBBBB", policy_sha256="0" * 64, now=NOW
    )


@pytest.mark.parametrize(
    ("field", "seen", "get"),
    [
        ("url.path", {"path": "/" + "a" * 102399}, lambda r: r["url"]["path"]),
        ("url.query", {"query": "q=" + "b" * 50000}, lambda r: r["url"]["query"]),
        ("url.domain", {"domain": "d" * 5000}, lambda r: r["url"]["domain"]),
        ("http.request.method", {"method": "G" * 1000}, lambda r: r["http"]["request"]["method"]),
    ],
)
def test_long_value_is_truncated_with_its_length(
    field: str, seen: dict[str, str], get: Callable[[Record], str]
) -> None:
    """A value past its limit is cut, marked, and its original length kept."""
    r = record(**seen)
    value = get(r)
    original = len(next(iter(seen.values())))
    assert value.endswith(TRUNCATED)
    assert len(value) == LIMITS[field] + len(TRUNCATED)
    assert r["socialgate"]["truncated"] == {field: original}


def test_short_values_are_kept_whole() -> None:
    """Ordinary values are untouched and no truncation is noted."""
    r = record(path="/" + "a" * 2047, query="q=1")
    assert r["url"]["path"] == "/" + "a" * 2047
    assert "truncated" not in r["socialgate"]


def test_names_are_bounded_in_number_and_length() -> None:
    """The names list keeps at most 8 names of at most 255 characters."""
    names = tuple(f"{i}.{'n' * 400}.example" for i in range(20))
    r = record(Decision(Outcome.BLOCKED, Reason.NAME_MISMATCH, "x.com", names=names))
    kept = r["socialgate"]["names"]
    assert len(kept) == 8
    assert all(len(n) <= 255 + len(TRUNCATED) for n in kept)
    assert r["socialgate"]["truncated"] == {
        "socialgate.names": 20,
        "socialgate.names[]": len(names[0]),
    }


def test_huge_path_record_is_small_and_verifies() -> None:
    """A 100 KB path gives a record line of a few KB that seals and verifies."""
    r = record(path="/" + "x" * 102399)
    data, digest = Renderer(KEY).render(r, "w1", 1, "0" * 64)
    line = data.decode().rstrip("\n")
    assert len(data) < 4096
    parsed = parse_line(line)
    assert record_hmac(KEY, parsed) == digest
    assert parsed["socialgate"]["truncated"] == {"url.path": 102400}
