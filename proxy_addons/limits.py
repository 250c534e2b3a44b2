"""Request size limits, enforced before anything goes upstream.

mitmproxy 12 puts no bound on an HTTP/1 request head (its parser carries a "FIXME: protect
against header size DoS"); for HTTP/2 the hpack decoder refuses header lists over 64 KiB, but
nothing bounds the number of fields or the length of ``:path``. Oversized requests were
forwarded, and the whole path went into the audit record.

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

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mitmproxy import ctx, exceptions, http

logger = logging.getLogger(__name__)


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


def check(request: http.Request, limits: Limits) -> Violation | None:
    """The first limit ``request`` breaks, or None."""
    target = len(request.data.path)
    if target > limits.request_target:
        return Violation(
            "socialgate_max_request_target",
            target,
            limits.request_target,
            414,
            "URI Too Long",
        )
    fields = request.headers.fields
    if len(fields) > limits.header_fields:
        return Violation(
            "socialgate_max_header_fields",
            len(fields),
            limits.header_fields,
            431,
            "Request Header Fields Too Large",
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
                "Request Header Fields Too Large",
            )
        block += size + 2  # CRLF
    if block > limits.header_block:
        return Violation(
            "socialgate_max_header_block",
            block,
            limits.header_block,
            431,
            "Request Header Fields Too Large",
        )
    return None


# Records the refusal when the request is social; returns the record's reference or None.
Recorder = Callable[[http.HTTPFlow, Violation, bool], str | None]


class RequestLimits:
    """Refuses oversized requests in ``requestheaders``; runs before the gate.

    ``record`` (the gate's) writes an audit record when the request is social; non-social
    refusals are not recorded. A refused request whose body may stream is killed.
    """

    def __init__(self, record: Recorder, killed: Callable[[http.Request], bool]) -> None:
        self.limits = Limits()
        self.record = record
        self.killed = killed

    def load(self, loader: Any) -> None:
        for name, (_, default, low, high, help_) in OPTIONS.items():
            loader.add_option(name, int, default, f"{help_} ({low} to {high}.)")

    def configure(self, updated: set[str]) -> None:
        names = updated & OPTIONS.keys()
        if not names:
            return
        values: dict[str, int] = {}
        for name, (attr, _, low, high, _help) in OPTIONS.items():
            value = getattr(ctx.options, name)
            if name in names and not low <= value <= high:
                raise exceptions.OptionsError(f"{name}={value}: must be between {low} and {high}")
            values[attr] = value
        if values["header_field_size"] > values["header_block"]:
            raise exceptions.OptionsError(
                f"socialgate_max_header_field_size={values['header_field_size']}: must not "
                f"exceed socialgate_max_header_block={values['header_block']}"
            )
        self.limits = Limits(**values)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        try:
            violation = check(flow.request, self.limits)
            if violation is None:
                return
            kill = self.killed(flow.request)
            ref = self.record(flow, violation, kill)
        except Exception:
            logger.exception("socialgate: error checking request limits; killing the request")
            flow.kill()
            return
        if kill:
            flow.kill()
            return
        headers = {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"}
        text = f"{violation.status} {violation.message}: refused by the proxy.\n"
        if ref is not None:
            headers["X-Socialgate-Ref"] = ref
            text += f"Reference: {ref}\n"
        flow.response = http.Response.make(violation.status, text.encode(), headers)
