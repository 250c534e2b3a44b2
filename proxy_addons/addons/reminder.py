"""The code-of-conduct reminder over HTTP: the page, the acknowledge link, the 303.

An exempt user's page load is answered with the reminder when one is due
(the request itself is not sent); following its acknowledge link records the
acknowledgement and sends the browser where it was going. The nonces and who
acknowledged when are `proxy_addons.reminder.Reminders` (pure state).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from mitmproxy import http

from proxy_addons.addons.enforce import page_response, record_first
from proxy_addons.addons.identity import flow_source
from proxy_addons.addons.policy_store import PolicyStore
from proxy_addons.audit.record import reminder_acknowledged_record, reminder_shown_record
from proxy_addons.audit.trail import AccessAudit
from proxy_addons.decide import Decision
from proxy_addons.pages.render import reminder_page
from proxy_addons.reminder import (
    ACK_PREFIX,
    Reminders,
    ack_nonce,
    ack_target,
    ack_url,
    is_navigation,
)

_EXPIRED = b"This acknowledgement link has expired or is not yours. Reload the page.\n"


class ReminderDesk:
    """Shows the reminder when due and takes acknowledgements, for the gate."""

    def __init__(
        self, store: PolicyStore, audit: AccessAudit, clock: Callable[[], dt.datetime]
    ) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock
        self.reminders = Reminders()

    async def answer(
        self, flow: http.HTTPFlow, d: Decision, user: str, ref: str
    ) -> Decision | None:
        """Answer an allowed request with the reminder or the acknowledgement, if it is one.

        None: the flow has its response. Otherwise the decision the gate goes on
        enforcing (blocked if an acknowledgement could not be recorded).
        """
        if flow.request.path.startswith(ACK_PREFIX):
            d = await self._acknowledge(flow, d, user)
            return None if d.allowed else d
        if self._due(flow, user):
            self._show(flow, d, user, ref)
            return None
        return d

    def _due(self, flow: http.HTTPFlow, user: str) -> bool:
        policy = self.store.current
        if policy is None or policy.reminder is None:
            return False
        req = flow.request
        if not is_navigation(
            req.method, req.headers.get("accept", ""), req.headers.get("sec-fetch-dest")
        ):
            return False
        return self.reminders.due(user, policy.reminder.every, self.clock())

    def _show(self, flow: http.HTTPFlow, d: Decision, user: str, ref: str) -> None:
        """Answer with the code-of-conduct page instead; the request itself is not sent."""
        policy = self.store.require()
        nonce = self.reminders.issue(user, ref, self.clock())
        page = reminder_page(
            policy,
            site=d.site or d.host,
            exemption_id=d.exemption_id or "",
            ack_url=ack_url(nonce, flow.request.path),
            ref=ref,
        )
        self.audit.submit_nowait(
            reminder_shown_record(
                d,
                user=user,
                source_ip=flow_source(flow).ip,
                policy_sha256=self._policy_sha256(),
                ref=ref,
                now=self.clock(),
            )
        )
        flow.response = page_response(200, page, "no-store, max-age=0")

    async def _acknowledge(self, flow: http.HTTPFlow, d: Decision, user: str) -> Decision:
        """Record the acknowledgement, then send the browser where it was going."""
        req = flow.request
        pending = self.reminders.acknowledge(user, ack_nonce(req.path), self.clock())
        if pending is None:
            flow.response = http.Response.make(
                400,
                _EXPIRED,
                {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"},
            )
            return d
        record = reminder_acknowledged_record(
            d,
            user=user,
            source_ip=flow_source(flow).ip,
            policy_sha256=self._policy_sha256(),
            reminder_ref=pending.ref,
            now=self.clock(),
        )
        d = await record_first(self.audit, record, d, "acknowledgement not recorded")
        if not d.allowed:
            self.reminders.acknowledged.pop(user, None)
            return d
        flow.response = http.Response.make(
            303,
            b"",
            {"Location": ack_target(req.query.get("next", "/")), "Cache-Control": "no-store"},
        )
        return d

    def _policy_sha256(self) -> str:
        policy = self.store.current
        return policy.sha256 if policy else ""
