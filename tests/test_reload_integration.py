"""Live reload through a real mitmdump: grants, revocations and broken edits while it serves."""

from __future__ import annotations

import datetime as dt
import pathlib
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from proxy_addons.policy import edit
from proxy_addons.policy.model import Access
from tests.support.client import H2Client
from tests.support.commented_policy import policy_text, today, write_policy
from tests.support.policies import PASSWORD, write_htpasswd
from tests.support.proxy import Proxy
from tests.support.upstream import Servers

pytestmark = pytest.mark.integration

Y = today().year
D = dt.timedelta
# Default socialgate_reload_interval (2 s) plus settling and loading.
RELOAD_WITHIN = 6.0

EXTRA = f"""\
  - id: EX-{Y}-020
    user: frank
    sites: [x.com]
    access: full
    business_case: Social media team
    approved_by: d.smith
    granted: {today() - D(1)}
    expires: {today() + D(30)}
  - id: EX-{Y}-021
    user: gina
    sites: [x.com]
    access: full
    business_case: Social media team
    approved_by: d.smith
    granted: {today() - D(1)}
    expires: {today() + D(30)}
"""


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, servers: Servers
) -> Iterator[tuple[Proxy, pathlib.Path]]:
    work = tmp_path_factory.mktemp("reload")
    policy = write_policy(work / "pol", policy_text(EXTRA))
    htpasswd = write_htpasswd(work / "pol")
    proxy = Proxy(
        work,
        policy,
        work / "audit.jsonl",
        servers.http.port,
        servers.https.port,
        # lazy: mitmproxy offers HTTP/2 to the client although the upstream speaks 1.1.
        options=("--set", f"proxyauth=@{htpasswd}", "--set", "connection_strategy=lazy"),
    ).start()
    yield proxy, policy
    proxy.stop()


def client(proxy: Proxy, user: str) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(proxy.ca))
    return httpx.Client(proxy=proxy.url(user, PASSWORD), verify=ctx, timeout=10)


def wait_for(
    proxy: Proxy, action: str, after: int, timeout: float = RELOAD_WITHIN
) -> dict[str, Any]:
    """The first ``action`` record past the first ``after`` records, waiting for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in proxy.records()[after:]:
            if r["event"]["action"] == action:
                return r
        time.sleep(0.05)
    raise AssertionError(f"no {action} record within {timeout} s")


def grant(policy: pathlib.Path, user: str, site: str) -> str:
    spec = edit.GrantSpec(
        user=user, group=None, sites=(site,), access=Access.FULL,
        business_case="Recruitment campaign", approved_by="d.smith",
        expires=today() + D(20),
    )  # fmt: skip
    return edit.grant(policy, spec).exemption_id


def test_grant_is_allowed_within_seconds(live: tuple[Proxy, pathlib.Path]) -> None:
    """A CLI grant lets the user in within a few seconds, without a restart."""
    proxy, policy = live
    with client(proxy, "carol") as c:
        assert c.get("http://www.facebook.com/").status_code == 403
    start = time.monotonic()
    new_id = grant(policy, "carol", "facebook.com")
    while True:
        with client(proxy, "carol") as c:
            if c.get("http://www.facebook.com/").status_code == 200:
                break
        assert time.monotonic() - start < RELOAD_WITHIN, "grant not in force in time"
        time.sleep(0.2)
    loaded = wait_for(proxy, "policy-loaded", 0)
    assert new_id in [
        i
        for r in proxy.records()
        if r["event"]["action"] == "policy-loaded"
        for i in r["socialgate"].get("changes", {}).get("exemptions", {}).get("added", [])
    ]
    assert loaded["socialgate"]["policy_sha256"]


@pytest.mark.parametrize(
    ("user", "exemption", "url", "http2"),
    [
        ("frank", f"EX-{Y}-020", "http://x.com/timeline", False),
        ("gina", f"EX-{Y}-021", "https://x.com/timeline", False),
        ("dana", f"EX-{Y}-002", "https://www.facebook.com/groups", True),
    ],
    ids=["http", "https-keepalive", "https-http2"],
)
def test_revocation_bites_on_the_same_connection(
    live: tuple[Proxy, pathlib.Path], user: str, exemption: str, url: str, http2: bool
) -> None:
    """After a revoke the very next request on an open keep-alive / HTTP/2 connection is blocked."""
    proxy, policy = live
    if http2:
        h2c = H2Client(proxy.port, url.split("/")[2], user, PASSWORD, str(proxy.ca))
        get: Callable[[], int] = lambda: h2c.get("/" + url.split("/", 3)[3])  # noqa: E731
        close = h2c.close
    else:
        c = client(proxy, user)
        get, close = (lambda: c.get(url).status_code), c.close
    try:
        assert get() == 200
        mark = len(proxy.records())
        edit.revoke(policy, exemption, by="e.admin", reason="Misuse")
        loaded = wait_for(proxy, "policy-loaded", mark)
        assert {"id": exemption, "fields": ["revoked"]} in (
            loaded["socialgate"]["changes"]["exemptions"]["changed"]
        )
        assert get() == 403
    finally:
        close()
    recs = [r for r in proxy.access_records() if r.get("user", {}).get("name") == user]
    allowed = [r for r in recs if r["event"]["action"] == "request-allowed"][-1]
    blocked = [r for r in recs if r["event"]["action"] == "request-blocked"][-1]
    assert blocked["event"]["reason"] == "revoked"
    assert blocked["socialgate"]["exemption_id"] == exemption
    # One client connection: the same source port for both requests.
    assert blocked["source"]["port"] == allowed["source"]["port"]


def test_broken_edit_keeps_last_good_policy(live: tuple[Proxy, pathlib.Path]) -> None:
    """A broken save is refused and audited; the last good policy keeps being enforced."""
    proxy, policy = live
    good = policy.read_text()
    mark = len(proxy.records())
    policy.write_text(good.replace("    group: press-office", "    group: press-ofice", 1))
    try:
        failed = wait_for(proxy, "policy-reload-failed", mark)
        assert failed["event"]["outcome"] == "failure"
        assert "unknown group 'press-ofice'" in failed["event"]["reason"]
        assert failed["event"]["reason"].startswith(f"{policy}:")
        with client(proxy, "alice") as c:
            assert c.get("http://x.com/").status_code == 200  # EX-001 still in force
        with client(proxy, "erin") as c:
            assert c.get("http://facebook.com/").status_code == 403  # still expired
    finally:
        # The last good policy is the one in force: restoring it is read as "unchanged".
        seen = len(proxy.output)
        policy.write_text(good)
        deadline = time.monotonic() + RELOAD_WITHIN
        while not any("policy unchanged" in line for line in proxy.output[seen:]):
            assert time.monotonic() < deadline, "restored policy not read"
            time.sleep(0.05)
