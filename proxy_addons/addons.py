"""The socialgate addons, in hook order, for both ways of starting the proxy."""

from __future__ import annotations

from typing import Any

from proxy_addons.audit.addon import AuditTrail
from proxy_addons.gate import Gate, may_stream
from proxy_addons.identity import CredentialCache
from proxy_addons.limits import RequestLimits
from proxy_addons.policystore import PolicyStore
from proxy_addons.proxyheaders import ProxyHeaders
from proxy_addons.reload import PolicyWatcher
from proxy_addons.startguard import StartGuard
from proxy_addons.uploads import body_pending


def make_addons() -> list[Any]:
    # Order matters: the audit trail is configured first so that the policy
    # store's first swap is recorded (the watcher subscribes to the store and
    # writes policy-loaded with a summary of what changed); the gate runs after
    # proxyauth (a default addon) and the credential cache.
    audit = AuditTrail()
    store = PolicyStore()
    gate = Gate(store, audit)
    # StartGuard last: it applies --set values once every socialgate option exists.
    # ProxyHeaders after proxyauth (which reads Proxy-Authorization), before anything else;
    # RequestLimits before the gate (an oversized request is refused, not judged).
    limits = RequestLimits(gate.record_refusal, lambda r: may_stream(r) or body_pending(r))
    return [
        ProxyHeaders(),
        audit,
        store,
        PolicyWatcher(store, audit),
        CredentialCache(),
        limits,
        gate,
        StartGuard(),
    ]
