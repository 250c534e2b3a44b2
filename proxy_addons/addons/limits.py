"""Request size limits, enforced in ``requestheaders`` before anything goes upstream.

Which limit a request breaks, the options and their defaults are `proxy_addons.limits`.
A refusal is recorded through the gate (`record_refusal`) when the request is social.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mitmproxy import ctx, exceptions, http

from proxy_addons.addons.access import oversized_access
from proxy_addons.addons.conn_state import names_of_request
from proxy_addons.addons.gate import Gate
from proxy_addons.addons.identity import identify, scrub_password
from proxy_addons.audit.record import new_ref
from proxy_addons.decide import Outcome, Reason, decide
from proxy_addons.identity import ANONYMOUS
from proxy_addons.limits import OPTIONS, Limits, Violation, check, limits_from

logger = logging.getLogger(__name__)

# Records the refusal when the request is social; returns the record's reference or None.
Recorder = Callable[[http.HTTPFlow, Violation, bool], str | None]


def check_request(request: http.Request, limits: Limits) -> Violation | None:
    """The first limit ``request`` breaks, or None."""
    return check(request.data.path, request.headers.fields, limits)


def record_refusal(
    gate: Gate, flow: http.HTTPFlow, violation: Violation, killed: bool
) -> str | None:
    """Record a request refused before judging (over a size limit) if any name it shows is
    social, as ``request-too-large``; the record's reference. Non-social refusals leave none."""
    state = gate.conns.get(flow.client_conn)
    scrub_password(flow)
    try:
        identity = identify(gate.store.require(), flow)
    except Exception:
        identity = ANONYMOUS
    req = flow.request
    try:
        names = names_of_request(state, req)
        d = decide(gate.store.require(), identity.user, names, req.method, gate.clock())
    except Exception:
        d = gate.error_decision(flow)
    if not d.social:
        return None
    d = replace(d, outcome=Outcome.BLOCKED, reason=Reason.REQUEST_TOO_LARGE)
    ref = new_ref()
    access = oversized_access(
        identity, flow, domain=d.host, status=None if killed else violation.status
    )
    enforcement = "killed" if killed else "refused"
    if state is not None:
        state.pending = None  # this record supersedes the connection's
    gate.audit.submit_nowait(gate.build_record(d, access, ref, enforcement, violation))
    flow.metadata["socialgate"] = {"outcome": "blocked", "ref": ref, "reason": str(d.reason)}
    return ref


class RequestLimits:
    """Refuses oversized requests in ``requestheaders``; runs before the gate.

    ``record`` (`record_refusal` on the gate) writes an audit record when the request is
    social; non-social refusals are not recorded. A refused request whose body may stream,
    or whose body would have to be read first (``killed``), is killed.
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
