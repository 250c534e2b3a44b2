"""Reading fields of an audit record defensively.

Records come from files an investigator hands us; a field of the wrong type
is treated as absent rather than crashing a search half-way through.
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]

ACCESS_OUTCOMES = ("allowed", "blocked")
NO_USER = "(unidentified)"


def obj(record: Record, name: str) -> dict[str, Any]:
    value = record.get(name)
    return value if isinstance(value, dict) else {}


def text(mapping: dict[str, Any], name: str) -> str | None:
    value = mapping.get(name)
    return value if isinstance(value, str) else None


def sg(record: Record) -> dict[str, Any]:
    return obj(record, "socialgate")


def outcome(record: Record) -> str | None:
    """``allowed`` / ``blocked`` on access records, None on every other event."""
    value = sg(record).get("outcome")
    return value if value in ACCESS_OUTCOMES else None


def is_access(record: Record) -> bool:
    return outcome(record) is not None


def user(record: Record) -> str | None:
    return text(obj(record, "user"), "name")


def target_user(record: Record) -> str | None:
    return text(obj(obj(record, "user"), "target"), "name")


def target_group(record: Record) -> str | None:
    return text(obj(obj(obj(record, "user"), "target"), "group"), "name")


def action(record: Record) -> str:
    return text(obj(record, "event"), "action") or ""


def reason(record: Record) -> str | None:
    return text(sg(record), "reason") or text(obj(record, "event"), "reason")


def domain(record: Record) -> str | None:
    return text(obj(record, "url"), "domain")


def site(record: Record) -> str | None:
    """The list's site the access belongs to (twimg.com belongs to x.com), else the domain."""
    return text(sg(record), "site") or domain(record)


def category(record: Record) -> str | None:
    return text(sg(record), "category")


def exemption_id(record: Record) -> str | None:
    return text(sg(record), "exemption_id")


def names(record: Record) -> list[str]:
    """Every host name the access showed (CONNECT, SNI, Host) and the URL's domain."""
    out = [n for n in sg(record).get("names") or () if isinstance(n, str)]
    d = domain(record)
    if d is not None and d not in out:
        out.append(d)
    return out


def groups(record: Record) -> list[str]:
    """Groups the proxy knew the user to be in at the time."""
    return [g for g in sg(record).get("groups") or () if isinstance(g, str)]


def method(record: Record) -> str | None:
    return text(obj(obj(record, "http"), "request"), "method")


def path(record: Record) -> str | None:
    return text(obj(record, "url"), "path")


def status_code(record: Record) -> int | None:
    value = obj(obj(record, "http"), "response").get("status_code")
    return value if isinstance(value, int) else None


def ref(record: Record) -> str | None:
    return text(sg(record), "ref") or text(obj(record, "event"), "id")


def source_ip(record: Record) -> str | None:
    return text(obj(record, "source"), "ip")


def message(record: Record) -> str:
    return text(record, "message") or ""
