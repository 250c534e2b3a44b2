"""The addon that owns the audit trail: options, lifecycle records, submission.

The gate never writes files itself: it hands built records to `submit` (and
waits, for allowed requests) or `submit_nowait` (the `AccessAudit` protocol
of `proxy_addons.audit.trail`), so the writer can change without touching
it. Records are pseudonymised here (if configured), then sealed into the
chain and written by the `ChainWriter` thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import pathlib
import socket
import sys
from dataclasses import dataclass
from typing import Any

from mitmproxy import ctx, exceptions

from proxy_addons.audit.checkpoints import default_checkpoints_path
from proxy_addons.audit.commit import GroupCommit
from proxy_addons.audit.keys import (
    load_or_create_secret,
    load_or_create_signing_key,
    public_key_path,
    sealing_static_key,
)
from proxy_addons.audit.pseudonym import Pseudonymiser
from proxy_addons.audit.record import Record, event_record
from proxy_addons.audit.writer import FSYNC_MODES, ChainWriter, WriterConfig
from proxy_addons.errors import AuditError, AuditUnavailable
from proxy_addons.paths import DEFAULT_AUDIT_LOG, DEFAULT_KEY, DEFAULT_SIGNING_KEY

logger = logging.getLogger(__name__)


_INT_OPTIONS = {
    # name: (default, minimum)
    "socialgate_audit_checkpoint_records": (1000, 0),
    "socialgate_audit_checkpoint_seconds": (60, 0),
    "socialgate_audit_fsync_interval_ms": (1000, 1),
    "socialgate_audit_rotate_bytes": (100 * 1024 * 1024, 0),
    "socialgate_audit_rotate_seconds": (0, 0),
    # Forward-secure sealing: a short epoch costs one record per epoch; 1 s is for tests.
    "socialgate_audit_epoch_seconds": (900, 1),
}
_PATH_OPTIONS = {
    "socialgate_audit_log": (
        DEFAULT_AUDIT_LOG,
        "audit trail (JSON lines, one ECS record per event)",
    ),
    "socialgate_audit_key": (
        DEFAULT_KEY,
        "HMAC key of the audit hash chain (generated, mode 0600, if absent); keep it apart "
        "from the log and a copy off the host: verify needs it",
    ),
    "socialgate_audit_signing_key": (
        DEFAULT_SIGNING_KEY,
        "Ed25519 key that signs audit checkpoints (generated if absent, public key beside it "
        "as .pub); empty: no checkpoints",
    ),
    "socialgate_admin_log": (
        "",
        "admin audit chain that `socialgate exempt` appends to (the proxy never writes it; "
        "empty: admin-audit.jsonl beside the audit trail)",
    ),
    "socialgate_audit_checkpoints": (
        "",
        "signed checkpoint file, to ship off the host (empty: <log name>.checkpoints beside "
        "the log)",
    ),
    "socialgate_audit_worker": (
        "",
        "chain id of this proxy process in the audit trail (empty: the one found in the log, "
        "else <hostname>:<log file name>); one per process writing its own log",
    ),
    "socialgate_audit_seal_dir": (
        "",
        "forward-secure sealing: writable directory of each worker's evolving chain key "
        "(enrolled by `socialgate init`; the verification seed stays off the host); the key "
        "steps every socialgate_audit_epoch_seconds and the old one is erased. Empty: one "
        "static key (socialgate_audit_key), not forward-secure",
    ),
    "socialgate_audit_pseudonymise_key": (
        "",
        "key file for pseudonymising user names with HMAC (generated if absent); whoever holds "
        "it can re-identify users; empty: real names",
    ),
}
_OPTIONS = {*_INT_OPTIONS, *_PATH_OPTIONS, "socialgate_audit_fsync"}


@dataclass(frozen=True, slots=True)
class AuditConfig:
    writer: WriterConfig
    key: pathlib.Path
    signing_key: pathlib.Path | None
    pseudonymise_key: pathlib.Path | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def checkpoints_path(options: Any) -> pathlib.Path | None:
    """The checkpoint file the options name (None: no signing key, so no checkpoints)."""
    if not options.socialgate_audit_signing_key.strip():
        return None
    given = options.socialgate_audit_checkpoints.strip()
    if given:
        return pathlib.Path(given)
    return default_checkpoints_path(pathlib.Path(options.socialgate_audit_log))


def _config(options: Any) -> AuditConfig:
    for name, (_, minimum) in _INT_OPTIONS.items():
        value = getattr(options, name)
        if value < minimum:
            raise exceptions.OptionsError(f"{name}={value}: must be at least {minimum}")
    fsync = options.socialgate_audit_fsync
    if fsync not in FSYNC_MODES:
        raise exceptions.OptionsError(
            f"socialgate_audit_fsync={fsync}: must be one of {', '.join(FSYNC_MODES)}"
        )
    for name in ("socialgate_audit_log", "socialgate_audit_key"):
        if not getattr(options, name).strip():
            raise exceptions.OptionsError(f"{name}={getattr(options, name)!r}: must not be empty")
    log = pathlib.Path(options.socialgate_audit_log)
    key = pathlib.Path(options.socialgate_audit_key)
    if key.resolve().parent == log.resolve().parent:
        raise exceptions.OptionsError(
            f"socialgate_audit_key={key}: keep the key out of the log directory {log.parent}"
        )
    signing = options.socialgate_audit_signing_key.strip()
    pseudo = options.socialgate_audit_pseudonymise_key.strip()
    seal_dir = options.socialgate_audit_seal_dir.strip()
    return AuditConfig(
        writer=WriterConfig(
            path=log,
            worker=options.socialgate_audit_worker.strip(),
            fsync=fsync,
            fsync_interval=options.socialgate_audit_fsync_interval_ms / 1000,
            rotate_bytes=options.socialgate_audit_rotate_bytes,
            rotate_seconds=float(options.socialgate_audit_rotate_seconds),
            checkpoints_path=checkpoints_path(options),
            checkpoint_records=options.socialgate_audit_checkpoint_records,
            checkpoint_seconds=float(options.socialgate_audit_checkpoint_seconds),
            seal_dir=pathlib.Path(seal_dir) if seal_dir else None,
            epoch_seconds=float(options.socialgate_audit_epoch_seconds),
        ),
        key=key,
        signing_key=pathlib.Path(signing) if signing else None,
        pseudonymise_key=pathlib.Path(pseudo) if pseudo else None,
    )


def _lifecycle(action: str, message: str, type_: str, **fields: Any) -> Record:
    return event_record(
        action, message, now=_now(), category=["process"], type_=[type_], socialgate=fields
    )


def _start_failing() -> bool:
    """Whether mitmproxy will stop this start (errors were logged during start-up)."""
    errorcheck = ctx.master.addons.get("errorcheck")
    return bool(getattr(getattr(errorcheck, "logger", None), "has_errored", None))


def _created(paths: list[pathlib.Path | None]) -> list[pathlib.Path]:
    """Which of the key files at ``paths`` do not exist yet (they will be generated)."""
    return [p for p in paths if p is not None and not p.exists()]


# Records arriving before the trail opens (the policy loaded at start-up, early blocked
# attempts); written right after audit-started.
_MAX_EARLY = 10_000


class AuditTrail:
    """The trail opens once the start cannot fail any more: `start` (``socialgate run``,
    before anything listens) or the ``running`` hook (``mitmdump -s``), so a start that
    fails leaves nothing behind: no audit-started record, no log, no generated key."""

    def __init__(self) -> None:
        self.writer: ChainWriter | None = None
        self.config: AuditConfig | None = None
        self.pseudonymiser: Pseudonymiser | None = None
        self.log_query = False
        self._commit: GroupCommit | None = None  # of the current writer and loop
        # Nothing is opened until `start` (called by StartGuard once the options are final):
        # mitmproxy applies defaults and rolled-back values first, which name no file the
        # user gave.
        self.started = False
        self._pending: AuditConfig | None = None  # started, to open at ``running`` (-s)
        self._early: list[Record] = []
        self._running = False

    @property
    def path(self) -> pathlib.Path | None:
        return self.config.writer.path if self.config else None

    def load(self, loader: Any) -> None:
        add = loader.add_option
        for name, (default, help_) in _PATH_OPTIONS.items():
            add(name, str, default, f"socialgate: {help_}.")
        for name, (number, _) in _INT_OPTIONS.items():
            add(name, int, number, f"socialgate: {name.removeprefix('socialgate_audit_')}.")
        add(
            "socialgate_audit_fsync",
            str,
            "always",
            "socialgate: when audit records reach the disk. always: an allowed request waits "
            "for its record's fsync (batched); interval: it waits for the write, fsync every "
            "socialgate_audit_fsync_interval_ms; never: only at rotation, checkpoints and exit.",
            choices=list(FSYNC_MODES),
        )
        add(
            "socialgate_audit_query",
            bool,
            False,
            "socialgate: record URL query strings in the audit trail (off: they may carry "
            "personal data).",
        )

    def configure(self, updated: set[str]) -> None:
        if "socialgate_audit_query" in updated:
            self.log_query = ctx.options.socialgate_audit_query
        if not updated & _OPTIONS:
            return
        config = _config(ctx.options)  # a bad value is refused even before the start
        if not self.started:
            return
        if self.writer is None and not self._running:
            self._pending = config  # not open yet: open this one at ``running``
            return
        if config == self.config and self.writer is not None:
            return
        self._open(config)  # changed while open: OptionsError rolls the change back

    def start(self, *, now: bool = True) -> None:
        """Take the options as they are now (final) as the trail's; raises OptionsError.

        ``now``: open it at once (``socialgate run``, everything else checked); otherwise at
        ``running`` (``mitmdump -s``: mitmproxy's own start-up checks may still fail).
        """
        config = _config(ctx.options)
        self.started = True
        if now or self._running:
            self._open(config)
        else:
            self._pending = config

    def running(self) -> None:
        self._running = True
        config, self._pending = self._pending, None
        if config is None:
            return
        if _start_failing():
            self._early.clear()
            logger.info("socialgate audit: start-up failed: nothing written to the audit trail")
            return
        try:
            self._open(config)
        except exceptions.OptionsError as e:
            logger.error("%s", e)
            # Also when mitmproxy's start-up error check has already run (script loaded late).
            ctx.master.event_loop.call_soon(sys.exit, 1)

    def _open(self, config: AuditConfig) -> None:
        new_keys = _created([config.key, config.signing_key, config.pseudonymise_key])
        if config.signing_key is not None and config.signing_key in new_keys:
            new_keys.append(public_key_path(config.signing_key))
        try:
            self._open_writer(config)
        except exceptions.OptionsError:
            # A failed start leaves no key behind that nothing was ever sealed with.
            for path in new_keys:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        early, self._early = self._early, []
        for record in early:
            self.submit_nowait(record)

    def _open_writer(self, config: AuditConfig) -> None:
        try:
            key = (
                load_or_create_secret(config.key, "audit key")
                if config.writer.seal_dir is None
                else sealing_static_key(config.key)
            )
            signing = load_or_create_signing_key(config.signing_key) if config.signing_key else None
            pseudonymiser = (
                Pseudonymiser(
                    load_or_create_secret(config.pseudonymise_key, "pseudonymisation key")
                )
                if config.pseudonymise_key
                else None
            )
        except AuditError as e:
            raise exceptions.OptionsError(f"socialgate audit: {e}") from None
        if config.signing_key is None:
            logger.warning(
                "socialgate audit: no signing key: no checkpoints, a truncated tail "
                "cannot be detected"
            )
        self._close(f"audit trail reconfigured: {config.writer.path}")
        writer = ChainWriter(
            config.writer,
            key,
            signing,
            default_worker=f"{socket.gethostname()}:{config.writer.path.name}",
        )
        try:
            writer.open(
                _lifecycle(
                    "audit-started",
                    f"audit trail started: {config.writer.path}",
                    "start",
                    fsync=config.writer.fsync,
                    pseudonymised=pseudonymiser is not None,
                )
            )
        except AuditError as e:
            raise exceptions.OptionsError(
                f"socialgate_audit_log={config.writer.path}: {e}"
            ) from None
        self.writer, self.config, self.pseudonymiser = writer, config, pseudonymiser
        logger.info(
            "socialgate audit: writing %s as worker %r from seq %d (fsync=%s)",
            config.writer.path,
            writer.worker,
            writer.seq,
            config.writer.fsync,
        )

    def done(self) -> None:
        self._close("audit trail stopped")

    def _close(self, message: str) -> None:
        writer, self.writer = self.writer, None
        commit, self._commit = self._commit, None
        if commit is not None:
            commit.drain()
        if writer is not None:
            writer.close(_lifecycle("audit-stopped", message, "end"))

    def _prepare(self, record: Record) -> Record:
        return self.pseudonymiser.apply(record) if self.pseudonymiser else record

    async def submit(self, record: Record) -> None:
        """Write a record that gates an allowed access; raises AuditUnavailable.

        Returns once the record is written (and fsynced with fsync=always).
        """
        writer = self.writer
        if writer is None:
            raise AuditUnavailable("the audit trail is not open")
        commit = self._group_commit(writer)
        waiter: asyncio.Future[None] = commit.loop.create_future()
        commit.add(self._prepare(record), waiter)
        await waiter

    def _group_commit(self, writer: ChainWriter) -> GroupCommit:
        """``writer``'s group commit for the running loop (RuntimeError: no loop here)."""
        loop = asyncio.get_running_loop()
        commit = self._commit
        if commit is None or commit.writer is not writer or commit.loop is not loop:
            if commit is not None:
                commit.drain()
            commit = self._commit = GroupCommit(writer, loop)
        return commit

    def submit_nowait(self, record: Record) -> None:
        """Write a record without waiting; a failure is logged loudly, never raised."""
        try:
            writer = self.writer
            if writer is None:
                if self._pending is not None and len(self._early) < _MAX_EARLY:
                    self._early.append(record)  # written once the trail opens
                    return
                raise AuditUnavailable("the audit trail is not open")
            try:
                commit = self._group_commit(writer)
            except RuntimeError:  # not on the event loop's thread: hand over directly
                writer.submit(self._prepare(record), wait=False)
            else:
                commit.add(self._prepare(record), None)
        except Exception as e:  # must never raise into the gate
            action = record.get("event", {}).get("action", "?") if isinstance(record, dict) else "?"
            logger.error("socialgate audit: record LOST (%s): %s", action, e)
