"""Every socialgate mitmproxy addon, and `make_addons`: them in hook order.

mitmproxy is imported only in this package (and `proxy_addons.cli.run`);
what the addons decide and record with is pure (`decide`, `policy`, `audit`).
Both ways of starting the proxy (`mitmdump -s proxy_addons/socialgate.py` and
`socialgate run`) load the list `make_addons` returns.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from proxy_addons.addons.audit_trail import AuditTrail
from proxy_addons.addons.checkpoint_ship import CheckpointShipping
from proxy_addons.addons.credential_cache import CredentialCache
from proxy_addons.addons.enforce import must_kill
from proxy_addons.addons.gate import Gate
from proxy_addons.addons.limits import RequestLimits, record_refusal
from proxy_addons.addons.policy_store import PolicyStore
from proxy_addons.addons.policy_watcher import PolicyWatcher
from proxy_addons.addons.proxy_headers import ProxyHeaders
from proxy_addons.addons.raw_tcp import RawTcpGuard
from proxy_addons.addons.start_guard import StartGuard


def make_addons(*, start_on_load: bool = True) -> list[Any]:
    """The addons; ``start_on_load=False``: the caller applies options, then calls
    ``StartGuard.start`` (`socialgate run`)."""
    # Order matters: the audit trail is configured first so that the policy
    # store's first swap is recorded (the watcher subscribes to the store's own
    # loads and writes policy-loaded with a summary of what changed); the gate
    # runs after proxyauth (a default addon) and the credential cache.
    # ProxyHeaders after proxyauth (which reads Proxy-Authorization), before anything else;
    # RequestLimits before the gate (an oversized request is refused, not judged).
    audit = AuditTrail()
    store = PolicyStore()
    gate = Gate(store, audit)
    return [
        ProxyHeaders(),
        audit,
        CheckpointShipping(audit),  # after the trail: its `done` sends the final checkpoint
        store,
        PolicyWatcher(store, audit),
        CredentialCache(),
        RequestLimits(partial(record_refusal, gate), must_kill),
        gate,
        RawTcpGuard(gate),
        # StartGuard last: it applies --set values once every socialgate option exists.
        StartGuard(store, audit, start_on_load=start_on_load),
    ]
