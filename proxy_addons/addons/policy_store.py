"""The addon that holds the policy in force.

A policy only ever replaces another whole: `swap` (and `exchange`) is a
single reference assignment, so a request sees either the old or the new
policy, never a mix. A policy that fails to load never replaces the one in
force.

Loads go through `read_policy`, which also notes the identity (device,
inode, size, mtime) of every file it read, so the watcher
(`proxy_addons.addons.policy_watcher`) knows which files to watch and
whether they changed since.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mitmproxy import ctx, exceptions

from proxy_addons.errors import PolicyError
from proxy_addons.fileio import open_regular
from proxy_addons.paths import DEFAULT_POLICY
from proxy_addons.policy.load import parse_policy_text
from proxy_addons.policy.model import Policy
from proxy_addons.policy.policyfile import MAX_POLICY_BYTES, decode_policy, unreadable

logger = logging.getLogger(__name__)


Listener = Callable[[Policy | None, Policy], None]

Stamp = tuple[int, int, int, int]  # device, inode, size, mtime (ns)
# A file that changed while it was read: never equal to a real stamp, so the
# watcher reads it again.
UNSTABLE: Stamp = (-1, -1, -1, -1)


def stamp_of(st: os.stat_result) -> Stamp:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def stamp(path: str) -> Stamp | None:
    """The file's identity now; None if it does not exist or cannot be read."""
    try:
        return stamp_of(os.stat(path))
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Reading:
    """One attempt to load the policy: the result, and the files as they were read."""

    path: str
    policy: Policy | None
    error: PolicyError | None
    files: Mapping[str, Stamp | None]  # policy file first, then category files


def _read_stamped(path: Path, files: dict[str, Stamp | None], limit: int | None) -> bytes:
    files[str(path)] = None
    with open_regular(path) as f:  # a FIFO is refused, not waited on
        before = stamp_of(os.fstat(f.fileno()))
        data = f.read() if limit is None else f.read(limit + 1)
        after = stamp_of(os.fstat(f.fileno()))
    files[str(path)] = after if before == after else UNSTABLE
    return data


def read_policy(path: str) -> Reading:
    """Load and validate the policy at ``path``; never raises `PolicyError`."""
    files: dict[str, Stamp | None] = {}
    try:
        data = _read_stamped(Path(path), files, MAX_POLICY_BYTES)
    except OSError as e:
        return Reading(path, None, unreadable(path, e), files)
    try:
        text = decode_policy(data, path)
        policy = parse_policy_text(text, path, read_file=lambda p: _read_stamped(p, files, None))
    except PolicyError as e:
        return Reading(path, None, e, files)
    return Reading(path, policy, None, files)


class PolicyStore:
    def __init__(self) -> None:
        self.current: Policy | None = None
        self.path: str = DEFAULT_POLICY
        # The files behind `current` as they were when read (see `read_policy`).
        self.files: Mapping[str, Stamp | None] = {}
        self._listeners: list[Listener] = []
        # The policy is read at `start` (StartGuard, options final), then on every change.
        self.started = False
        self.since = 0.0

    def load(self, loader: object) -> None:
        loader.add_option(  # type: ignore[attr-defined]
            "socialgate_policy",
            str,
            DEFAULT_POLICY,
            "socialgate policy file (YAML). The proxy refuses to start without a valid one.",
        )

    def configure(self, updated: set[str]) -> None:
        if "socialgate_policy" in updated:
            if not self.started:
                self.path = ctx.options.socialgate_policy
                return
            # Raising makes mitmproxy roll the option back: the last good policy stays.
            reading = self.read_configured()
            self.path = reading.path
            self.install(reading)

    def read_configured(self) -> Reading:
        """A successful reading of ``socialgate_policy`` as set now; OptionsError if not."""
        path = ctx.options.socialgate_policy
        reading = read_policy(path)
        if reading.error is not None:
            for line in reading.error.lines():
                logger.error("socialgate policy: %s", line)
            raise exceptions.OptionsError(f"socialgate_policy={path}: {reading.error}")
        return reading

    def start(self, reading: Reading) -> None:
        """Put the first policy in force; later changes of the option reload at once."""
        self.path = reading.path
        self.install(reading)
        self.started = True

    def install(self, reading: Reading) -> None:
        """Put a successful reading in force and tell the listeners."""
        assert reading.policy is not None
        self.files = reading.files
        self.swap(reading.policy)

    def exchange(self, reading: Reading) -> Policy | None:
        """Put a successful reading in force without telling the listeners; the old policy.

        The watcher's way in: it records the change itself, with what it knows
        of the reload (trigger, timing, the full diff).
        """
        assert reading.policy is not None
        self.files = reading.files
        return self._put(reading.policy)

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(old, new)`` after every `swap`/`install` (not `exchange`)."""
        self._listeners.append(listener)

    def swap(self, policy: Policy) -> None:
        old = self._put(policy)
        for listener in self._listeners:
            listener(old, policy)

    def _put(self, policy: Policy) -> Policy | None:
        old, self.current = self.current, policy
        self.since = time.time()  # when the policy in force was put in force (health)
        logger.info(
            "socialgate policy in force: %s (sha256 %s, %d exemptions)",
            policy.path,
            policy.sha256[:12],
            len(policy.exemptions),
        )
        return old

    def require(self) -> Policy:
        """The policy in force; raises if none was ever loaded (the gate then blocks)."""
        if self.current is None:
            raise RuntimeError("no socialgate policy is loaded")
        return self.current
