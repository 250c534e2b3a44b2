"""The addon that owns the audit sink: options, lifecycle records, submission.

The gate never writes files itself: it hands built records to `submit`
(and waits for allowed requests) so the sink can change without touching it.
"""

from __future__ import annotations

import datetime as dt
import logging
import pathlib

from mitmproxy import ctx, exceptions

from proxy_addons.audit.record import Record, event_record
from proxy_addons.audit.sink import AuditSink, JsonLinesSink
from proxy_addons.errors import AuditError, AuditUnavailable
from proxy_addons.policy.model import Policy

logger = logging.getLogger(__name__)

DEFAULT_AUDIT_LOG = "logs/audit.jsonl"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AuditTrail:
    def __init__(self) -> None:
        self.sink: AuditSink | None = None
        self.path: pathlib.Path | None = None
        self.log_query = False

    def load(self, loader: object) -> None:
        add = loader.add_option  # type: ignore[attr-defined]
        add(
            "socialgate_audit_log",
            str,
            DEFAULT_AUDIT_LOG,
            "socialgate audit trail (JSON lines, one ECS record per event).",
        )
        add(
            "socialgate_audit_query",
            bool,
            False,
            "Record URL query strings in the audit trail (off: they may carry personal data).",
        )

    def configure(self, updated: set[str]) -> None:
        if "socialgate_audit_query" in updated:
            self.log_query = ctx.options.socialgate_audit_query
        if "socialgate_audit_log" in updated:
            path = pathlib.Path(ctx.options.socialgate_audit_log)
            if path == self.path and self.sink is not None:
                return
            try:
                sink = JsonLinesSink(path)
            except AuditError as e:
                raise exceptions.OptionsError(f"socialgate_audit_log={path}: {e}") from None
            old = self.sink
            self.sink, self.path = sink, path
            if old is not None:
                self._lifecycle(old, "audit-stopped", f"audit trail moved to {path}")
                old.close()
            self._lifecycle(sink, "audit-started", f"audit trail started: {path}")

    def done(self) -> None:
        if self.sink is not None:
            self._lifecycle(self.sink, "audit-stopped", "audit trail stopped")
            self.sink.close()
            self.sink = None

    def _lifecycle(self, sink: AuditSink, action: str, message: str) -> None:
        try:
            sink.submit_nowait(
                event_record(action, message, now=_now(), category=["process"], type_=["info"])
            )
        except AuditUnavailable as e:
            logger.error("socialgate audit: %s", e)

    async def submit(self, record: Record) -> None:
        """Write a record that gates an allowed access; raises AuditUnavailable."""
        if self.sink is None:
            raise AuditUnavailable("the audit trail is not open")
        await self.sink.submit(record)

    def submit_nowait(self, record: Record) -> None:
        """Write a record without waiting; a failure is logged loudly, not raised."""
        try:
            if self.sink is None:
                raise AuditUnavailable("the audit trail is not open")
            self.sink.submit_nowait(record)
        except AuditUnavailable as e:
            logger.error("socialgate audit record lost (%s): %s", record["event"]["action"], e)

    def policy_loaded(self, old: Policy | None, new: Policy) -> None:
        """PolicyStore listener: every policy put in force is on the record."""
        self.submit_nowait(
            event_record(
                "policy-loaded",
                f"policy loaded: {new.path}",
                now=_now(),
                category=["configuration"],
                type_=["change"],
                socialgate={
                    "policy_sha256": new.sha256,
                    "policy_path": new.path,
                    "previous_sha256": old.sha256 if old else None,
                    "exemptions": len(new.exemptions),
                },
            )
        )
