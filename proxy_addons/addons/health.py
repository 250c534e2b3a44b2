"""Health for the service manager and monitoring: sd_notify, and a status file.

Under systemd with ``Type=notify`` (``$NOTIFY_SOCKET`` set) the proxy says
``READY=1`` once it serves with a policy in force and the audit trail open
(never for a start that fails), ``RELOADING=1`` (with ``MONOTONIC_USEC``) while a
policy reload runs and ``READY=1`` after it, ``STOPPING=1`` at shutdown, and
keeps ``STATUS=`` (``systemctl status``) current: the policy's sha256 and age,
the last reload's result, the audit writer's state and the records lost since
start. ``socialgate_status_file`` writes the same as JSON (atomically replaced)
for a monitoring agent on the host; both are refreshed every few seconds and on
every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import pathlib
import time
from typing import Any

from mitmproxy import ctx

from proxy_addons import sdnotify
from proxy_addons.addons.audit_trail import AuditTrail
from proxy_addons.addons.checkpoint_ship import CheckpointShipping
from proxy_addons.addons.policy_store import PolicyStore
from proxy_addons.addons.policy_watcher import PolicyWatcher
from proxy_addons.fileio import replace_file

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ago(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


class Health:
    def __init__(
        self,
        store: PolicyStore,
        watcher: PolicyWatcher,
        audit: AuditTrail,
        shipping: CheckpointShipping | None = None,
    ) -> None:
        self.store = store
        self.watcher = watcher
        self.audit = audit
        self.shipping = shipping
        self.state = "starting"
        self.status_file: pathlib.Path | None = None
        self._task: asyncio.Task[None] | None = None
        watcher.observe(self._reload_started, self._reload_finished)

    # -- mitmproxy hooks -----------------------------------------------------

    def load(self, loader: Any) -> None:
        loader.add_option(
            "socialgate_status_file",
            str,
            "",
            "socialgate: health as JSON for monitoring (policy sha256 and age, last reload, "
            "audit writer state, records lost), rewritten every few seconds; empty: none.",
        )

    def configure(self, updated: set[str]) -> None:
        if "socialgate_status_file" in updated:
            value = ctx.options.socialgate_status_file.strip()
            self.status_file = pathlib.Path(value) if value else None

    def running(self) -> None:
        if self.store.current is None or self.audit.writer is None:
            return  # this start is failing: never say ready
        self.state = "ready"
        self._publish("READY=1")
        self._task = asyncio.get_running_loop().create_task(self._refresh())

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.state != "starting":
            self.state = "stopping"
            self._publish("STOPPING=1")

    # -- what is said --------------------------------------------------------

    def _reload_started(self, trigger: str) -> None:
        if self.state == "ready":
            self.state = "reloading"
            self._publish("RELOADING=1", f"MONOTONIC_USEC={sdnotify.monotonic_usec()}")

    def _reload_finished(self) -> None:
        if self.state == "reloading":
            self.state = "ready"
            self._publish("READY=1")

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            self._publish()

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        policy = self.store.current
        last = self.watcher.status
        writer = self.audit.writer
        lost_by: dict[str, int] = {}
        if writer is not None:
            with contextlib.suppress(RuntimeError):  # the writer thread counts meanwhile
                lost_by = dict(writer.lost)
        return {
            "state": self.state,
            "pid": os.getpid(),
            "updated": _iso(now),
            "policy": None
            if policy is None
            else {
                "path": self.store.path,
                "sha256": policy.sha256,
                "in_force_since": _iso(self.store.since),
                "age_seconds": round(now - self.store.since, 1),
            },
            "last_reload": None
            if last is None
            else {
                "result": last.result,
                "trigger": last.trigger,
                "at": _iso(last.at),
                "message": last.message,
            },
            "audit": {
                "state": "closed"
                if writer is None
                else ("failing" if writer.broken else "writing"),
                "log": str(writer.path) if writer is not None else None,
                "seq": writer.seq if writer is not None else None,
                "error": writer.broken if writer is not None else None,
            },
            "records_lost_since_start": {
                "total": writer.lost_total if writer is not None else 0,
                "by_action": lost_by,
            },
            # None: checkpoints are not shipped (socialgate_checkpoint_syslog unset).
            "checkpoint_shipping": self.shipping.snapshot() if self.shipping else None,
        }

    @staticmethod
    def status_line(snap: dict[str, Any]) -> str:
        """The one line of ``STATUS=``."""
        now = time.time()
        policy = snap["policy"]
        parts = [
            "no policy"
            if policy is None
            else f"policy {policy['sha256'][:12]} (in force {_ago(policy['age_seconds'])})"
        ]
        last = snap["last_reload"]
        if last is not None:
            at = dt.datetime.fromisoformat(last["at"]).timestamp()
            text = f"last reload {last['result']} ({last['trigger']}, {_ago(now - at)} ago)"
            if last["message"]:
                text += f": {last['message']}"
            parts.append(text)
        audit = snap["audit"]
        parts.append(
            f"audit {audit['state']}"
            + (f" at seq {audit['seq']}" if audit["seq"] is not None else "")
            + (f" ({audit['error']})" if audit["error"] else "")
        )
        parts.append(f"{snap['records_lost_since_start']['total']} records lost since start")
        ship = snap.get("checkpoint_shipping")
        if ship is not None:
            parts.append(
                f"checkpoints to {ship['target']} {ship['state']}: {ship['shipped']} shipped, "
                f"{ship['pending']} pending, {ship['dropped']} dropped"
            )
        return "; ".join(parts)

    def _publish(self, *fields: str) -> None:
        snap = self.snapshot()
        sdnotify.notify(*fields, f"STATUS={self.status_line(snap)}")
        if self.status_file is not None:
            try:
                data = json.dumps(snap, indent=2, sort_keys=True).encode() + b"\n"
                replace_file(self.status_file, data)
            except OSError as e:
                logger.warning("socialgate: cannot write %s: %s", self.status_file, e)
