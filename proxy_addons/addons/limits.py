"""Request size limits, enforced in ``requestheaders`` before anything goes upstream.

Which limit a request breaks, the options and their defaults are `proxy_addons.limits`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mitmproxy import ctx, exceptions, http

from proxy_addons.limits import OPTIONS, Limits, Violation, check, limits_from

logger = logging.getLogger(__name__)

# Records the refusal when the request is social; returns the record's reference or None.
Recorder = Callable[[http.HTTPFlow, Violation, bool], str | None]


def check_request(request: http.Request, limits: Limits) -> Violation | None:
    """The first limit ``request`` breaks, or None."""
    return check(request.data.path, request.headers.fields, limits)


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
        try:
            self.limits = limits_from({n: getattr(ctx.options, n) for n in OPTIONS}, names)
        except ValueError as e:
            raise exceptions.OptionsError(str(e)) from None

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        try:
            violation = check_request(flow.request, self.limits)
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
