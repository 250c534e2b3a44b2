"""Every socialgate mitmproxy addon, and `make_addons`: them in hook order.

mitmproxy is imported only in this package (and `proxy_addons.cli.run`);
what the addons decide and record with is pure (`decide`, `policy`, `audit`).
Both ways of starting the proxy (`mitmdump -s proxy_addons/socialgate.py` and
`socialgate run`) load the list `make_addons` returns.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from proxy_addons import hangup
from proxy_addons.addons import script_errors
from proxy_addons.addons.audit_trail import AuditTrail
from proxy_addons.addons.checkpoint_ship import CheckpointShipping
from proxy_addons.addons.credential_cache import CredentialCache
from proxy_addons.addons.enforce import must_kill
from proxy_addons.addons.forwarded import ForwardedFor
from proxy_addons.addons.gate import Gate
from proxy_addons.addons.health import Health
from proxy_addons.addons.limits import RequestLimits, record_refusal
from proxy_addons.addons.policy_store import PolicyStore
from proxy_addons.addons.policy_watcher import PolicyWatcher
from proxy_addons.addons.proxy_headers import ProxyHeaders
from proxy_addons.addons.raw_tcp import RawTcpGuard
from proxy_addons.addons.reminder import SharedState
from proxy_addons.addons.start_guard import StartGuard


def make_addons(*, start_on_load: bool = True) -> list[Any]:
    """The addons; ``start_on_load=False``: the caller applies options, then calls
    ``StartGuard.start`` (`socialgate run`)."""
    # `mitmdump -s`: the earliest moment our code runs; a SIGHUP from now on is
    # remembered (and reloads once running) instead of ending the proxy.
    hangup.catch_early()
    script_errors.install()
    # Order matters: the audit trail is configured first so that the policy
    # store's first swap is recorded (the watcher subscribes to the store's own
    # loads and writes policy-loaded with a summary of what changed); the gate
    # runs after proxyauth (a default addon) and the credential cache.
    # ProxyHeaders after proxyauth (which reads Proxy-Authorization), before anything else;
    # RequestLimits before the gate (an oversized request is refused, not judged).
    # ForwardedFor first of all (after proxyauth): every other addon reads the client
    # address it finds behind a trusted load balancer.
    audit = AuditTrail()
    store = PolicyStore()
    gate = Gate(store, audit)
    watcher = PolicyWatcher(store, audit)
    shipping = CheckpointShipping(audit)
    return [
        ForwardedFor(gate),
        ProxyHeaders(),
        audit,
        shipping,  # after the trail: its `done` sends the final checkpoint
        store,
        watcher,
        CredentialCache(),
        RequestLimits(partial(record_refusal, gate), must_kill),
        gate,
        RawTcpGuard(gate),
        # Health after the audit trail and the store: it says READY only once both are up.
        Health(store, watcher, audit, shipping),
        SharedState(gate.reminder),
        # StartGuard last: it applies --set values once every socialgate option exists.
        StartGuard(store, audit, start_on_load=start_on_load),
    ]
