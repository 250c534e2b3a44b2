"""A stand-in for the AuditTrail addon: keeps records in memory and can be made to fail."""

from __future__ import annotations

from proxy_addons.audit.record import Record
from proxy_addons.errors import AuditUnavailable


class FakeAuditTrail:
    """What the gate and the policy watcher call on the audit trail, without a disk."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.fail = False  # True: as if the disk were full
        self.log_query = False

    async def submit(self, record: Record) -> None:
        if self.fail:
            raise AuditUnavailable("disk full")
        self.records.append(record)

    def submit_nowait(self, record: Record) -> None:
        if not self.fail:  # the real addon logs the loss loudly instead of raising
            self.records.append(record)

    def actions(self) -> list[str]:
        """The event.action of every record kept, in order."""
        return [r["event"]["action"] for r in self.records]
