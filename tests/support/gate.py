"""A gate on a test policy, with an in-memory audit trail (no network, no disk)."""

from __future__ import annotations

import pathlib

from proxy_addons.addons.gate import Gate
from proxy_addons.addons.policy_store import PolicyStore
from proxy_addons.policy.load import load_policy
from tests.support.fake_audit import FakeAuditTrail


def gate_on(policy_file: pathlib.Path) -> tuple[Gate, FakeAuditTrail]:
    """A `Gate` enforcing the policy in ``policy_file``, and the trail it records to."""
    store = PolicyStore()
    store.swap(load_policy(policy_file))
    sink = FakeAuditTrail()
    return Gate(store, sink), sink
