"""What the addons need from the audit trail, as Protocols.

The gate and the policy watcher depend on these, not on the `AuditTrail`
addon (`proxy_addons.addons.audit_trail`), so the trail's writer can change
without touching them and their tests can hand them a list.
"""

from __future__ import annotations

from typing import Protocol

from proxy_addons.audit.record import Record


class RecordSink(Protocol):
    """Takes records without making the caller wait (blocked attempts, policy events)."""

    def submit_nowait(self, record: Record) -> None:
        """Queue the record; a failure is logged loudly, never raised."""


class AccessAudit(RecordSink, Protocol):
    """What the gate needs: records that an allowed access waits for, and a privacy choice."""

    @property
    def log_query(self) -> bool:
        """Whether URL query strings go into the records (they may carry personal data)."""

    async def submit(self, record: Record) -> None:
        """Write the record; return only once it is as durable as configured.

        Raises `AuditUnavailable` if it could not be written: the caller must
        then refuse the access the record describes.
        """
