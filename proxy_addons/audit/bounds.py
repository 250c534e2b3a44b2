"""Bounds on what an audit record keeps of attacker-controlled strings (applied in record.py)."""

from __future__ import annotations

# Bounds on what a record keeps of attacker-controlled strings. A path or query longer
# than 2048 characters is well past what browsers and sites use in practice (2 KB is the
# long-standing safe URL length) while a record stays under a few KB; a DNS name has at
# most 253 characters; a request names at most a handful of hosts (CONNECT, SNI, Host,
# request target), so 8 leaves room for repeats. A truncated value ends in TRUNCATED and
# `socialgate.truncated` maps the field to its original length.
TRUNCATED = "...[truncated]"
LIMITS = {
    "url.path": 2048,
    "url.query": 2048,
    "url.domain": 255,
    "rule.name": 255,
    "http.request.method": 32,
    "socialgate.names": 8,
    "socialgate.names[]": 255,
}


def bounded(field: str, value: str, truncated: dict[str, int], limit: int = 0) -> str:
    """``value`` cut to the field's limit, noting its original length in ``truncated``."""
    limit = limit or LIMITS[field]
    if len(value) <= limit:
        return value
    truncated[field] = max(truncated.get(field, 0), len(value))
    return value[:limit] + TRUNCATED


def bounded_names(names: tuple[str, ...], truncated: dict[str, int]) -> list[str]:
    """At most LIMITS["socialgate.names"] names, each bounded like a domain."""
    limit = LIMITS["socialgate.names"]
    if len(names) > limit:
        truncated["socialgate.names"] = len(names)
    return [bounded("socialgate.names[]", n, truncated) for n in names[:limit]]
