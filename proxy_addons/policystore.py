"""The addon that holds the policy in force.

A policy only ever replaces another whole: `swap` is a single reference
assignment, so a request sees either the old or the new policy, never a mix.
A policy that fails to load never replaces the one in force.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mitmproxy import ctx, exceptions

from proxy_addons.errors import PolicyError
from proxy_addons.policy.load import load_policy
from proxy_addons.policy.model import Policy

logger = logging.getLogger(__name__)

DEFAULT_POLICY = "policies/policy.yaml"

Listener = Callable[[Policy | None, Policy], None]


class PolicyStore:
    def __init__(self) -> None:
        self.current: Policy | None = None
        self.path: str = DEFAULT_POLICY
        self._listeners: list[Listener] = []

    def load(self, loader: object) -> None:
        loader.add_option(  # type: ignore[attr-defined]
            "socialgate_policy",
            str,
            DEFAULT_POLICY,
            "socialgate policy file (YAML). The proxy refuses to start without a valid one.",
        )

    def configure(self, updated: set[str]) -> None:
        if "socialgate_policy" in updated:
            path = ctx.options.socialgate_policy
            try:
                policy = load_policy(path)
            except PolicyError as e:
                # Raising makes mitmproxy roll the option back: the last good policy stays.
                raise exceptions.OptionsError(f"socialgate_policy={path}: {e}") from None
            self.path = path
            self.swap(policy)

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(old, new)`` after every swap (e.g. to audit policy-loaded)."""
        self._listeners.append(listener)

    def swap(self, policy: Policy) -> None:
        old, self.current = self.current, policy
        logger.info(
            "socialgate policy in force: %s (sha256 %s, %d exemptions)",
            policy.path,
            policy.sha256[:12],
            len(policy.exemptions),
        )
        for listener in self._listeners:
            listener(old, policy)

    def require(self) -> Policy:
        """The policy in force; raises if none was ever loaded (the gate then blocks)."""
        if self.current is None:
            raise RuntimeError("no socialgate policy is loaded")
        return self.current
