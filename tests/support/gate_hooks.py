"""A gate under mitmproxy's test context, and flows to drive its hooks (no network).

`policy_file` and `parts` are pytest fixtures: a test module imports them by name (and
lists them in ``__all__``) to use them.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from mitmproxy.addons import proxyserver
from mitmproxy.test import taddons, tflow, tutils

from proxy_addons.addons.gate import Gate
from proxy_addons.addons.policy_store import PolicyStore
from proxy_addons.policy.load import load_policy
from tests.support.fake_audit import FakeAuditTrail
from tests.support.policies import write_policy

# The gate under test, its audit trail, and mitmproxy's test context.
Parts = tuple[Gate, FakeAuditTrail, Any]


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return write_policy(tmp_path_factory.mktemp("unit-policy"))


def gate_on(policy_file: pathlib.Path) -> tuple[Gate, FakeAuditTrail]:
    """A `Gate` enforcing the policy in ``policy_file``, and the trail it records to."""
    store = PolicyStore()
    store.swap(load_policy(policy_file))
    sink = FakeAuditTrail()
    return Gate(store, sink), sink


@pytest.fixture
def parts(policy_file: pathlib.Path) -> Iterator[Parts]:
    g, sink = gate_on(policy_file)
    with taddons.context(g, proxyserver.Proxyserver()) as tctx:
        yield g, sink, tctx


def social_flow(user: str | None, host: str = "www.facebook.com", method: str = "GET") -> Any:
    """A plain-HTTP request flow to ``host``, from ``user`` (proxyauth) if given."""
    f = tflow.tflow(req=tutils.treq(host=host, port=80, method=method.encode()))
    f.request.headers["host"] = host
    f.request.headers["accept"] = "*/*"
    if user:
        f.metadata["proxyauth"] = (user, "secret-password")
    return f


def run(coro: Any) -> Any:
    return asyncio.run(coro)
