"""A short-lived cache of proxy credentials that already passed proxyauth's check.

mitmproxy's proxyauth re-checks the password on every plain-HTTP request
(bcrypt or LDAP on the event loop: about 15 requests/s at bcrypt cost 10), so
`CredentialCache` wraps its validator with a small, short-lived cache of
credentials that already passed. Passwords are never stored: the cache keeps
an HMAC under a per-process random key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from mitmproxy import ctx, exceptions

Validator = Callable[[str, str], bool]


class CachingValidator:
    """Wraps a proxyauth validator; remembers successful checks for ``ttl`` seconds.

    Only successes are cached, so a wrong password always pays the full check
    and a changed password takes effect within ``ttl``.
    """

    def __init__(self, inner: Validator, ttl: float, size: int) -> None:
        self.inner = inner
        self.ttl = ttl
        self.size = size
        self._key = os.urandom(32)
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _digest(self, username: str, password: str) -> bytes:
        msg = username.encode("utf-8", "surrogateescape") + b"\0"
        msg += password.encode("utf-8", "surrogateescape")
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def __call__(self, username: str, password: str) -> bool:
        if self.ttl <= 0 or self.size <= 0:
            return bool(self.inner(username, password))
        key = self._digest(username, password)
        now = time.monotonic()
        expires = self._seen.get(key)
        if expires is not None:
            if expires > now:
                self.hits += 1
                self._seen.move_to_end(key)
                return True
            del self._seen[key]
        self.misses += 1
        if not self.inner(username, password):
            return False
        self._seen[key] = now + self.ttl
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True


class CredentialCache:
    """Addon: puts a `CachingValidator` around proxyauth's validator."""

    def __init__(self) -> None:
        self.ttl = 300.0
        self.size = 10_000

    def load(self, loader: Any) -> None:
        loader.add_option(
            "socialgate_auth_cache_ttl",
            int,
            300,
            "Seconds a verified proxy credential is trusted without re-checking it (0 disables).",
        )
        loader.add_option(
            "socialgate_auth_cache_size",
            int,
            10_000,
            "Most verified credentials kept in the cache.",
        )

    def configure(self, updated: set[str]) -> None:
        if "socialgate_auth_cache_ttl" in updated:
            ttl = ctx.options.socialgate_auth_cache_ttl
            if not 0 <= ttl <= 86_400:
                raise exceptions.OptionsError(
                    f"socialgate_auth_cache_ttl={ttl}: must be between 0 and 86400 seconds"
                )
            self.ttl = float(ttl)
        if "socialgate_auth_cache_size" in updated:
            size = ctx.options.socialgate_auth_cache_size
            if not 0 <= size <= 10_000_000:
                raise exceptions.OptionsError(
                    f"socialgate_auth_cache_size={size}: must be between 0 and 10000000"
                )
            self.size = size
        if updated & {"proxyauth", "socialgate_auth_cache_ttl", "socialgate_auth_cache_size"}:
            self.wrap()

    def wrap(self) -> None:
        proxyauth = ctx.master.addons.get("proxyauth")
        validator = getattr(proxyauth, "validator", None)
        if validator is None:
            return
        if isinstance(validator, CachingValidator):
            validator = validator.inner  # settings changed: start a fresh cache
        proxyauth.validator = CachingValidator(validator, self.ttl, self.size)
