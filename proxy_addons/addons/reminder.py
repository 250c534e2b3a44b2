"""The code-of-conduct reminder over HTTP: the page, the acknowledge link, the 303.

An exempt user's page load is answered with the reminder when one is due
(the request itself is not sent); following its acknowledge link records the
acknowledgement and sends the browser where it was going. The nonces and who
acknowledged when are a `proxy_addons.reminder.ReminderState`: in memory, or in the file
every worker of the host shares (option ``socialgate_shared_state``, declared by the
`SharedState` addon; `proxy_addons.shared_state`).

If the shared file cannot be used at request time, the desk errs as the reminder always
has, on the side of reminding: a reminder is due; one that cannot be shown or
acknowledged blocks the page load (reason ``error``, recorded by the gate); the failure
is logged once until the file works again.
"""

from __future__ import annotations

import datetime as dt
import logging
import pathlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mitmproxy import ctx, exceptions, http

from proxy_addons.addons.enforce import page_response, record_first
from proxy_addons.addons.identity import flow_source
from proxy_addons.addons.policy_store import PolicyStore
from proxy_addons.audit.record import reminder_acknowledged_record, reminder_shown_record
from proxy_addons.audit.trail import AccessAudit
from proxy_addons.decide import Decision, Outcome, Reason
from proxy_addons.errors import StateUnavailable
from proxy_addons.pages.render import reminder_page
from proxy_addons.reminder import (
    ACK_PREFIX,
    Reminders,
    ReminderState,
    ack_nonce,
    ack_target,
    ack_url,
    is_navigation,
)
from proxy_addons.shared_state import SharedReminders

logger = logging.getLogger(__name__)

OPTION = "socialgate_shared_state"

_EXPIRED = b"This acknowledgement link has expired or is not yours. Reload the page.\n"


class ReminderDesk:
    """Shows the reminder when due and takes acknowledgements, for the gate."""

    def __init__(
        self, store: PolicyStore, audit: AccessAudit, clock: Callable[[], dt.datetime]
    ) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock
        self.reminders: ReminderState = Reminders()
        self._failing = False  # the shared state failed; logged once until it works again

    def _unavailable(self, e: StateUnavailable) -> None:
        if not self._failing:
            self._failing = True
            logger.error("socialgate: shared reminder state unavailable, reminding: %s", e)

    def _works(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("socialgate: shared reminder state available again")

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
            try:
                self._show(flow, d, user, ref)
            except StateUnavailable as e:
                self._unavailable(e)
                return replace(d, outcome=Outcome.BLOCKED, reason=Reason.ERROR)
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
        try:
            due = self.reminders.due(user, policy.reminder.every, self.clock())
        except StateUnavailable as e:
            self._unavailable(e)
            return True
        self._works()
        return due

    def _show(self, flow: http.HTTPFlow, d: Decision, user: str, ref: str) -> None:
        """Answer with the code-of-conduct page instead; the request itself is not sent."""
        policy = self.store.require()
        nonce = self.reminders.issue(user, ref, self.clock())
        self._works()
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
        now = self.clock()
        try:
            pending = self.reminders.acknowledge(user, ack_nonce(req.path), now)
        except StateUnavailable as e:
            self._unavailable(e)
            return replace(d, outcome=Outcome.BLOCKED, reason=Reason.ERROR)
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
            now=now,
        )
        d = await record_first(self.audit, record, d, "acknowledgement not recorded")
        if not d.allowed:
            try:
                self.reminders.withdraw(user, now)
            except StateUnavailable as e:
                self._unavailable(e)
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


class SharedState:
    """The addon declaring ``socialgate_shared_state``: where the reminder desk keeps its
    state (empty: in memory). The file is opened (created if absent, never its directory)
    when the option is set; a path that cannot be used stops the start."""

    def __init__(self, desk: ReminderDesk) -> None:
        self.desk = desk

    def load(self, loader: Any) -> None:
        loader.add_option(
            OPTION,
            str,
            "",
            """
            socialgate: SQLite file (absolute path) shared by every worker of this host for the
            code-of-conduct reminder (who acknowledged when, the single-use acknowledge
            links), created if absent. Empty: each process keeps its own, in memory.
            """,
        )

    def configure(self, updated: set[str]) -> None:
        if OPTION not in updated:
            return
        value = getattr(ctx.options, OPTION).strip()
        current = getattr(self.desk.reminders, "path", None)
        if value and current == pathlib.Path(value):
            return
        if value and not pathlib.Path(value).is_absolute():
            # Never a file wherever the proxy happened to be started from.
            raise exceptions.OptionsError(f"{OPTION}={value}: must be an absolute path")
        try:
            state: ReminderState = SharedReminders(pathlib.Path(value)) if value else Reminders()
        except StateUnavailable as e:
            raise exceptions.OptionsError(f"{OPTION}={value}: {e}") from None
        old, self.desk.reminders = self.desk.reminders, state
        old.close()

    def done(self) -> None:
        self.desk.reminders.close()
