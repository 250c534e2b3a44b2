"""Every name that can steer a request, collected from plain values (no mitmproxy objects).

A request reaches a server chosen by one name and is routed there by others: the CONNECT
target and the address mitmproxy connects to pick the server, the SNI picks a certificate
and often a backend, each Host header, HTTP/2 ``:authority`` and an absolute-form request
target (forwarded as written inside a tunnel) pick the virtual host. Judging only one of
them lets the others through, so the decision is taken on all of them (`decide.decide`
decides on the union and refuses names that disagree in a way the policy cannot vouch for).
"""

from __future__ import annotations

from collections.abc import Iterable

_SNI_EXTENSION = 0


def request_names(
    *,
    connect_host: str | None,
    sni: str | None,
    sni_names: Iterable[str] = (),
    request_host: str | None,
    authority: str | None,
    host_headers: Iterable[str],
) -> list[str | None]:
    """The names of one request, in order: tunnel names first, then the request's own.

    ``sni_names`` are the raw SNI names when mitmproxy found none valid (`raw_sni`);
    ``request_host`` is the host mitmproxy connects to: its HTTP layer opens (or reuses)
    the server connection for ``(request.host, request.port)`` (``make_server_connection``),
    and inside a tunnel it first overwrites ``request.host`` with the CONNECT target
    (``state_wait_for_request_headers``, transparent mode), so ``flow.server_conn.address``
    never names anything else at this point. ``authority`` is the absolute-form target
    (forwarded as written inside a tunnel) or HTTP/2 ``:authority``; ``host_headers`` every
    Host header (repeated headers are each judged: ``headers["host"]`` would join them).
    """
    names: list[str | None] = [connect_host, sni, *sni_names, request_host, authority]
    names.extend(host_headers)
    return names


def raw_sni(client_hello: bytes) -> list[str]:
    """Every server name in a ClientHello's SNI extension, as sent (non-ASCII escaped).

    mitmproxy reports no SNI when the extension holds an invalid name or several names, yet a
    passed-through connection delivers them to the server: the gate judges them itself.
    Returns [] when the ClientHello has no SNI extension or cannot be parsed.
    """
    try:
        return _server_names(client_hello)
    except (IndexError, ValueError):
        return []


def _server_names(ch: bytes) -> list[str]:
    pos = 2 + 32  # legacy_version, random
    pos += 1 + ch[pos]  # legacy_session_id
    pos += 2 + int.from_bytes(ch[pos : pos + 2])  # cipher_suites
    pos += 1 + ch[pos]  # legacy_compression_methods
    end = pos + 2 + int.from_bytes(ch[pos : pos + 2])
    pos += 2
    if end > len(ch):
        raise ValueError("truncated extensions")
    names: list[str] = []
    while pos + 4 <= end:
        ext_type = int.from_bytes(ch[pos : pos + 2])
        ext_len = int.from_bytes(ch[pos + 2 : pos + 4])
        body = ch[pos + 4 : pos + 4 + ext_len]
        pos += 4 + ext_len
        if ext_type != _SNI_EXTENSION or len(body) < 2:
            continue
        i = 2
        list_end = min(len(body), 2 + int.from_bytes(body[0:2]))
        while i + 3 <= list_end:
            size = int.from_bytes(body[i + 1 : i + 3])
            name = body[i + 3 : i + 3 + size]
            names.append(name.decode("ascii", errors="backslashreplace"))
            i += 3 + size
    return names
