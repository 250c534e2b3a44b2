"""Reloads that never hang: a named pipe at the policy path, through a real mitmdump."""

from __future__ import annotations

import os
import pathlib
import ssl
import time
from typing import Any

import httpx
import pytest

from tests.support.policies import write_htpasswd, write_policy
from tests.support.proxy import Proxy
from tests.support.upstream import Servers

pytestmark = pytest.mark.integration

API = {"Accept": "application/json"}


def wait_for(proxy: Proxy, action: str, after: int, timeout: float = 8) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rec in proxy.records()[after:]:
            if rec["event"]["action"] == action:
                return rec
        time.sleep(0.05)
    raise AssertionError(f"no {action} record within {timeout} s:\n" + "".join(proxy.output))


def alice_on_x(proxy: Proxy) -> int:
    trust = ssl.create_default_context(cafile=str(proxy.ca))
    with httpx.Client(proxy=proxy.url("alice"), verify=trust, timeout=10) as c:
        return c.get("https://x.com/api", headers=API).status_code


def test_fifo_at_policy_path_fails_loudly_and_later_edits_apply(
    tmp_path: pathlib.Path, servers: Servers
) -> None:
    """A named pipe is refused at once (record, log line); a revocation after it applies."""
    pol = tmp_path / "pol"
    pol.mkdir()
    policy = write_policy(pol)
    good = policy.read_text()
    proxy = Proxy(
        tmp_path,
        policy,
        tmp_path / "audit.jsonl",
        servers.http.port,
        servers.https.port,
        options=(
            "--set",
            f"proxyauth=@{write_htpasswd(pol)}",
            "--set",
            "socialgate_reload_interval=0.2",
        ),
    ).start()
    try:
        assert alice_on_x(proxy) == 200
        seen = len(proxy.records())
        policy.unlink()
        os.mkfifo(policy)
        failed = wait_for(proxy, "policy-reload-failed", seen)
        assert "named pipe" in failed["message"]
        assert failed["socialgate"]["policy_sha256"]  # the last good one stays in force
        assert "socialgate policy reload failed" in "".join(proxy.output)
        assert alice_on_x(proxy) == 200
        # The revocation that must not be lost behind the pipe.
        seen = len(proxy.records())
        policy.unlink()
        revoked = good.replace("group: press-office", "user: bob", 1)
        assert revoked != good
        policy.write_text(revoked)
        loaded = wait_for(proxy, "policy-loaded", seen)
        assert loaded["socialgate"]["trigger"] == "change"
        assert alice_on_x(proxy) == 403
    finally:
        code = proxy.stop()
    assert code == 0
