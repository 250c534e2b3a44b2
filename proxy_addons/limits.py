"""Request size limits: which limit a request head breaks (pure).

mitmproxy 12 puts no bound on an HTTP/1 request head (its parser carries a "FIXME: protect
against header size DoS"); for HTTP/2 the hpack decoder refuses header lists over 64 KiB, but
nothing bounds the number of fields or the length of ``:path``. Oversized requests were
forwarded, and the whole path went into the audit record. The addon enforcing these limits
is `proxy_addons.addons.limits`.

Defaults follow the web servers the sites themselves run behind, so a request refused here
would have been refused there too:

* request target 8 KiB -> 414: Apache ``LimitRequestLine`` 8190, nginx
  ``large_client_header_buffers`` 8k;
* 100 header fields -> 431: Apache ``LimitRequestFields`` 100;
* one field 16 KiB -> 431: twice Apache's ``LimitRequestFieldSize`` / nginx's 8k, as margin
  for the large cookies social sites set (a proxy should not be stricter than the site);
* header block 64 KiB -> 431: the hpack default mitmproxy's HTTP/2 already enforces, so
  HTTP/1 and HTTP/2 share one bound (nginx's default total is 32 KiB).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    request_target: int = 8 * 1024
    header_fields: int = 100
    header_field_size: int = 16 * 1024
    header_block: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class Violation:
    """Which limit a request broke, by how much, and the status that says so."""

    option: str
    size: int
    limit: int
    status: int
    message: str


DEFAULTS = Limits()

# option name -> (Limits field, default, lowest accepted, highest accepted, help)
OPTIONS: dict[str, tuple[str, int, int, int, str]] = {
    "socialgate_max_request_target": (
        "request_target",
        DEFAULTS.request_target,
        256,
        1024 * 1024,
        "Longest request target (path and query, in bytes); longer requests get 414.",
    ),
    "socialgate_max_header_fields": (
        "header_fields",
        DEFAULTS.header_fields,
        16,
        10_000,
        "Most header fields in one request; more get 431.",
    ),
    "socialgate_max_header_field_size": (
        "header_field_size",
        DEFAULTS.header_field_size,
        1024,
        1024 * 1024,
        "Longest single header field (name, colon, value, in bytes); longer gets 431.",
    ),
    "socialgate_max_header_block": (
        "header_block",
        DEFAULTS.header_block,
        4096,
        16 * 1024 * 1024,
        "Largest header block (all fields, in bytes); larger gets 431.",
    ),
}

_TOO_LARGE = "Request Header Fields Too Large"


def limits_from(values: Mapping[str, int], changed: set[str]) -> Limits:
    """The limits the options ``values`` set; ValueError naming the first bad ``changed`` one."""
    fields: dict[str, int] = {}
    for name, (attr, _, low, high, _help) in OPTIONS.items():
        value = values[name]
        if name in changed and not low <= value <= high:
            raise ValueError(f"{name}={value}: must be between {low} and {high}")
        fields[attr] = value
    if fields["header_field_size"] > fields["header_block"]:
        raise ValueError(
            f"socialgate_max_header_field_size={fields['header_field_size']}: must not "
            f"exceed socialgate_max_header_block={fields['header_block']}"
        )
    return Limits(**fields)


def check(target: bytes, fields: Sequence[tuple[bytes, bytes]], limits: Limits) -> Violation | None:
    """The first limit a request head (its target and header fields) breaks, or None."""
    if len(target) > limits.request_target:
        return Violation(
            "socialgate_max_request_target",
            len(target),
            limits.request_target,
            414,
            "URI Too Long",
        )
    if len(fields) > limits.header_fields:
        return Violation(
            "socialgate_max_header_fields", len(fields), limits.header_fields, 431, _TOO_LARGE
        )
    block = 0
    for name, value in fields:
        size = len(name) + 2 + len(value)  # "name: value"
        if size > limits.header_field_size:
            return Violation(
                "socialgate_max_header_field_size",
                size,
                limits.header_field_size,
                431,
                _TOO_LARGE,
            )
        block += size + 2  # CRLF
    if block > limits.header_block:
        return Violation("socialgate_max_header_block", block, limits.header_block, 431, _TOO_LARGE)
    return None
