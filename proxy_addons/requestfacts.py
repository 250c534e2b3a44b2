"""What does this request write? The facts a read-only exemption is judged on.

A read-only exemption allows reading: GET, HEAD and OPTIONS, with no request body, no
method-override header and no protocol upgrade. This module turns a request's method and
its header list into the reasons it writes (empty: it only reads). It is pure (no
mitmproxy), so the gate, `socialgate check` and the tests share one answer.

Everything a server could act on counts, in any spelling a server could accept: header
names are compared case-insensitively, with surrounding whitespace removed and ``_`` read
as ``-`` (CGI/WSGI servers map both to the same variable), and every repetition of a
header is looked at. Whatever cannot be judged counts as writing.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

# Methods that only read: GET, HEAD, OPTIONS (the rest: POST, PUT, DELETE, CONNECT, ...).
from proxy_addons.policy.model import READ_ONLY_METHODS

# Headers with which frameworks let a GET/POST stand for another method.
METHOD_OVERRIDE_HEADERS = frozenset(
    {"x-http-method-override", "x-http-method", "x-method-override"}
)


class Write(StrEnum):
    """One reason a request writes (recorded as ``socialgate.writes``)."""

    METHOD = "method"  # not GET, HEAD or OPTIONS
    METHOD_OVERRIDE = "method-override"  # X-HTTP-Method-Override and friends
    BODY = "body"  # a request body, declared or possible
    UPGRADE = "upgrade"  # an Upgrade header, any value (websocket, h2c, ...)
    CONNECTION_UPGRADE = "connection-upgrade"  # Connection: upgrade
    EXTENDED_CONNECT = "extended-connect"  # HTTP/2 :protocol (RFC 8441)


def header_name(name: str) -> str:
    """The name a lenient server would read: trimmed, lower case, ``_`` as ``-``."""
    return name.strip().lower().replace("_", "-")


def _tokens(value: str) -> list[str]:
    return [t.strip().lower() for t in value.split(",")]


def writes(
    method: str,
    headers: Iterable[tuple[str, str]],
    *,
    end_stream: bool | None = None,
) -> tuple[Write, ...]:
    """Why a request with this method and header list writes (empty: it only reads).

    ``headers`` is every header line, repeats included. ``end_stream`` is whether the
    request ended with its headers (HTTP/2 and HTTP/3: no body follows); ``None`` when
    unknown, in which case the body is judged on the headers only and the caller must
    check the body itself before anything of it is sent on.

    Body: no body only when there is no ``Content-Length`` or exactly one whose value is
    ``0``, and no ``Transfer-Encoding`` at all; a malformed or repeated length counts.
    """
    found: set[Write] = set()
    if method.strip().upper() not in READ_ONLY_METHODS:
        found.add(Write.METHOD)
    lengths: list[str] = []
    for raw_name, value in headers:
        name = header_name(raw_name)
        if name in METHOD_OVERRIDE_HEADERS:
            found.add(Write.METHOD_OVERRIDE)
        elif name == "upgrade":
            found.add(Write.UPGRADE)
        elif name == "connection" and "upgrade" in _tokens(value):
            found.add(Write.CONNECTION_UPGRADE)
        elif name == ":protocol":
            found.add(Write.EXTENDED_CONNECT)
        elif name == "transfer-encoding":
            found.add(Write.BODY)
        elif name == "content-length":
            lengths.append(value.strip())
    if lengths and lengths != ["0"]:
        found.add(Write.BODY)
    if end_stream is False:
        found.add(Write.BODY)
    return tuple(w for w in Write if w in found)


def body_known(http_version: str, end_stream: bool | None = None) -> bool:
    """Whether the headers settle if a body follows.

    HTTP/1 frames a request body only by Content-Length or Transfer-Encoding, so its
    headers say it all. HTTP/2 and HTTP/3 may send DATA with no length header; only the
    END_STREAM flag on the headers tells, and mitmproxy does not expose it to addons.
    """
    return end_stream is not None or http_version.upper().startswith("HTTP/1")
