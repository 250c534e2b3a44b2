"""The policy watcher: live reload with the last good policy kept on failure.

Every ``socialgate_reload_interval`` seconds the watcher stats the policy
file and every category file the policy in force was built from (device,
inode, size, mtime). On a change it waits until the files stop changing
(editors save in several steps), then reads and validates in a worker
thread, so the event loop keeps serving, and swaps the new policy in with one
reference assignment. SIGHUP reloads at once (one that came during start-up,
remembered by `proxy_addons.hangup`, as soon as the loop runs).

Reads are bounded in time: a named pipe at a watched path is refused at once
(`fileio.open_regular`), and a read that hangs (a hung network mount) is given
up after ``socialgate_reload_timeout`` seconds (`deadline.Deadline`); while it
still hangs, polling waits for it rather than starting more.

A failed reload changes nothing in force: the errors are logged as
``file:line: message`` and audited as ``policy-reload-failed``; the watcher
tries again on the next change. A successful one is audited as
``policy-loaded`` with the new sha256 and what changed: the watcher puts its
own reloads in force (`PolicyStore.exchange`) and writes that record itself;
the policies the store loads on its own (start-up, the option changed) reach
it as a store listener. The gate reads the policy in force on every request,
so a revocation bites on the next request, also on kept-alive and HTTP/2
connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mitmproxy import ctx, exceptions

from proxy_addons import hangup
from proxy_addons.addons.policy_store import PolicyStore, Reading, Stamp, read_policy, stamp
from proxy_addons.audit.record import policy_loaded_record, policy_reload_failed_record
from proxy_addons.audit.trail import RecordSink
from proxy_addons.deadline import Deadline, Hung
from proxy_addons.errors import PolicyError
from proxy_addons.policy.diff import PolicyDiff, diff_policies
from proxy_addons.policy.model import Policy

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 2.0
# Reading and validating a policy with million-entry lists takes seconds, not this.
DEFAULT_TIMEOUT = 30.0
# How long files must stay unchanged before a reload reads them, and how many
# times to wait for that before reading anyway (the read itself notices a
# file that changes under it and the next poll retries).
SETTLE_SECONDS = 0.3
SETTLE_ROUNDS = 10


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reload did: ``loaded``, ``unchanged`` or ``failed``."""

    result: str
    reading: Reading
    diff: PolicyDiff | None = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ReloadStatus:
    """The last reload, for monitoring: ``loaded``, ``unchanged`` or ``failed``."""

    result: str
    trigger: str
    at: float  # time.time()
    message: str = ""


def _seconds(text: str) -> float:
    """An option's seconds; NaN (refused by the range checks) if not a number."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _stamps(paths: list[str]) -> dict[str, Stamp | None]:
    return {p: stamp(p) for p in paths}


def _load(path: str, old: Policy | None) -> tuple[Reading, PolicyDiff | None, float]:
    """Worker thread: read, validate and diff (diffing 1M-entry lists is not free)."""
    start = time.perf_counter()
    reading = read_policy(path)
    diff = None
    if reading.policy is not None and (old is None or reading.policy.sha256 != old.sha256):
        diff = diff_policies(old, reading.policy)
    return reading, diff, time.perf_counter() - start


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PolicyWatcher:
    def __init__(self, store: PolicyStore, audit: RecordSink) -> None:
        self.store = store
        self.audit = audit
        self.interval = DEFAULT_INTERVAL
        # Files to watch and their stamps as last read (successfully or not).
        self._files: Mapping[str, Stamp | None] = {}
        self._lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sighup = False
        self.timeout = DEFAULT_TIMEOUT
        self._reads = Deadline("policy read")
        self.status: ReloadStatus | None = None
        # Told when a reload starts (its trigger) and ends (the new status): health.
        self._observers: list[tuple[Callable[[str], None], Callable[[], None]]] = []
        store.subscribe(self._loaded_by_store)

    # -- mitmproxy hooks -----------------------------------------------------

    def load(self, loader: Any) -> None:
        # Seconds as text: mitmproxy's --set cannot parse float options.
        loader.add_option(
            "socialgate_reload_interval",
            str,
            f"{DEFAULT_INTERVAL:g}",
            "Seconds between checks of the socialgate policy and category files for changes "
            "(0: no polling; SIGHUP still reloads).",
        )
        loader.add_option(
            "socialgate_reload_timeout",
            str,
            f"{DEFAULT_TIMEOUT:g}",
            "Seconds a policy reload may spend reading its files before it is given up as "
            "failed (hung file system); the last good policy stays in force.",
        )

    def configure(self, updated: set[str]) -> None:
        if "socialgate_reload_interval" in updated:
            value = _seconds(ctx.options.socialgate_reload_interval)
            if not math.isfinite(value) or value < 0 or 0 < value < 0.1:
                raise exceptions.OptionsError(
                    f"socialgate_reload_interval={value}: must be 0 (off) or at least 0.1 seconds"
                )
            self.interval = float(value)
            if self._poller is not None:
                self._start_polling()
        if "socialgate_reload_timeout" in updated:
            value = _seconds(ctx.options.socialgate_reload_timeout)
            if not math.isfinite(value) or value < 0.1:
                raise exceptions.OptionsError(
                    f"socialgate_reload_timeout={value}: must be at least 0.1 seconds"
                )
            self.timeout = float(value)

    def running(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            # A SIGHUP since start-up (remembered by `hangup.catch_early`) reloads now.
            hangup.attach(loop, self._on_sighup)
            self._sighup = True
        except (NotImplementedError, RuntimeError, ValueError):
            # Not the main thread, or no signals on this platform: polling only.
            logger.info("socialgate: SIGHUP reload unavailable here; polling only")
        self._start_polling()

    def done(self) -> None:
        if self._sighup:
            with contextlib.suppress(Exception):
                hangup.detach(asyncio.get_running_loop())
            self._sighup = False
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    # -- triggers ------------------------------------------------------------

    def _start_polling(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    def _on_sighup(self) -> None:
        logger.info("socialgate: SIGHUP, reloading the policy")
        task = asyncio.get_running_loop().create_task(self.reload("sighup"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _poll(self) -> None:
        while self.interval > 0:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:
                # The watcher must outlive any surprise; the policy in force stays.
                logger.exception("socialgate: policy watcher check failed")

    def _watched(self) -> dict[str, Stamp | None]:
        files = dict(self._files or self.store.files)
        files.setdefault(self.store.path, None)
        return files

    async def check(self) -> Outcome | None:
        """Reload if any watched file changed and has settled; None if nothing changed."""
        if self._reads.hung:
            return None  # an earlier read still hangs: on the record already, wait for it
        known = self._watched()
        paths = list(known)
        try:
            now = await self._reads.run(self.timeout, lambda: _stamps(paths))
        except Hung as e:
            return self._hung("change", e)
        if now == known:
            return None
        for _ in range(SETTLE_ROUNDS):
            await asyncio.sleep(min(SETTLE_SECONDS, self.interval or SETTLE_SECONDS))
            try:
                later = await self._reads.run(self.timeout, lambda: _stamps(paths))
            except Hung as e:
                return self._hung("change", e)
            if later == now:
                break
            now = later
        return await self.reload("change")

    def observe(self, started: Callable[[str], None], finished: Callable[[], None]) -> None:
        """Call ``started(trigger)`` when a reload begins and ``finished()`` when it ends."""
        self._observers.append((started, finished))

    async def reload(self, trigger: str) -> Outcome:
        """Read, validate and put in force; keeps the last good policy on failure."""
        async with self._lock:
            for started, _ in self._observers:
                started(trigger)
            try:
                return await self._reload(trigger)
            finally:
                for _, finished in self._observers:
                    finished()

    async def _reload(self, trigger: str) -> Outcome:
        """`reload` under the lock."""
        path = self.store.path
        old = self.store.current
        try:
            reading, diff, seconds = await self._reads.run(self.timeout, lambda: _load(path, old))
        except Hung as e:
            return self._hung(trigger, e)
        if path != self.store.path:
            # socialgate_policy was changed meanwhile: this reading is stale.
            return Outcome("unchanged", reading, None, seconds)
        if reading.policy is None:
            # Watch whatever the failed attempt tried to read, e.g. a
            # category file that does not exist yet.
            self._files = {**self._watched(), **reading.files}
            self._failed(reading, trigger)
            return Outcome("failed", reading, None, seconds)
        self._files = reading.files
        if old is not None and reading.policy.sha256 == old.sha256:
            self.store.files = reading.files
            logger.info("socialgate policy unchanged (%s)", path)
            self.status = ReloadStatus("unchanged", trigger, time.time())
            return Outcome("unchanged", reading, None, seconds)
        assert diff is not None
        replaced = self.store.exchange(reading)
        self._record_loaded(replaced, reading.policy, diff, trigger, seconds)
        return Outcome("loaded", reading, diff, seconds)

    # -- records -------------------------------------------------------------

    def _loaded_by_store(self, old: Policy | None, new: Policy) -> None:
        """PolicyStore listener: a policy the store loaded itself (start-up, option changed)."""
        self._files = self.store.files
        diff = diff_policies(old, new, domains=False)
        self._record_loaded(old, new, diff, "startup" if old is None else "option", 0.0)

    def _record_loaded(
        self, old: Policy | None, new: Policy, diff: PolicyDiff, trigger: str, seconds: float
    ) -> None:
        """Every policy put in force is on the record, with what changed."""
        self.status = ReloadStatus("loaded", trigger, time.time())
        logger.info("socialgate policy loaded (%s): %s", trigger, diff.text())
        self.audit.submit_nowait(
            policy_loaded_record(new, old, diff, trigger=trigger, seconds=seconds, now=_utcnow())
        )

    def _hung(self, trigger: str, e: Hung) -> Outcome:
        """A read past its deadline: a failed reload, on the record like any other."""
        path = self.store.path
        error = PolicyError([(path, 0, f"cannot read policy file: {e}")])
        reading = Reading(path, None, error, dict(self._watched()))
        self._failed(reading, trigger)
        return Outcome("failed", reading)

    def _failed(self, reading: Reading, trigger: str) -> None:
        error = reading.error
        assert error is not None
        self.status = ReloadStatus("failed", trigger, time.time(), error.lines()[0])
        for line in error.lines():
            logger.error("socialgate policy reload failed: %s", line)
        current = self.store.current
        logger.error(
            "socialgate: the last good policy stays in force (sha256 %s)",
            current.sha256[:12] if current else "none",
        )
        self.audit.submit_nowait(
            policy_reload_failed_record(
                error, path=reading.path, in_force=current, trigger=trigger, now=_utcnow()
            )
        )
