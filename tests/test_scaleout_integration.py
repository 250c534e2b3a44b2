"""Scale-out: two workers, started as deploy/socialgate@.service starts them, behind HAProxy
configured from deploy/haproxy.cfg; clients on 127.0.0.2 and 127.0.0.3 (loopback only).

What a deployment must keep when it spreads staff over several processes: proxy auth for
plain HTTP and CONNECT through the balancer, the real client address (not the balancer's)
for source-address identity and records, no believed X-Forwarded-For from clients, a killed
worker taken out and its clients served by the other, its chain continued on restart, no
social request allowed without a record, and every chain verifying at the end.
"""

from __future__ import annotations

import os
import pathlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.client import proxy_auth, read_all, ref_of, status, tls_request
from tests.support.haproxy import HAPROXY
from tests.support.proxy import BIN
from tests.support.scaleout import HOSTNAME, Site, seed_path
from tests.support.upstream import Servers

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.path.exists(HAPROXY), reason="haproxy missing: make system-deps"),
]

JSON = {"Accept": "application/json"}  # not a page load: no code-of-conduct reminder
# What every worker shares, beside what `socialgate init` writes: the balancer's address, and
# frequent checkpoints so that verify checks each worker's checkpoint file within seconds.
CONFIG: dict[str, object] = {
    "socialgate_trusted_proxies": "127.0.0.1",  # the balancer, as docs/deploying.md says
    "socialgate_shared_state": "",  # set per site: the host's reminder state (one file)
    "socialgate_audit_checkpoint_records": 20,
}
CLIENT_A, CLIENT_B = "127.0.0.2", "127.0.0.3"  # 127.0.0.2 is the policy's kiosk


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, servers: Servers) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("scaleout")
    config = dict(CONFIG, socialgate_shared_state=str(root / "state" / "shared-state.sqlite"))
    s = Site(root, servers, workers=2, extra_config=config)
    yield s
    s.stop()


@pytest.fixture
def trust(site: Site, upstream_cert: tuple[pathlib.Path, pathlib.Path]) -> ssl.SSLContext:
    """Trusts the installation's CA (intercepted flows) and the upstream's cert."""
    ctx = ssl.create_default_context(cafile=str(site.ca))
    ctx.load_verify_locations(cafile=str(upstream_cert[0]))
    return ctx


def client(port: int, user: str | None, trust: ssl.SSLContext | bool = False) -> httpx.Client:
    """A client of the proxy on ``port`` (from 127.0.0.1: httpx cannot bind a proxied
    connection's source address; the raw helpers below can)."""
    auth = f"{user}:Corr3ct-Horse-Battery@" if user else ""
    return httpx.Client(proxy=f"http://{auth}127.0.0.1:{port}", verify=trust, timeout=10)


def raw_get(port: int, url: str, source: str, user: str | None = None, extra: str = "") -> bytes:
    """One absolute-form GET from ``source`` (with proxy credentials for ``user``)."""
    host = url.split("/")[2]
    head = f"GET {url} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\n{extra}"
    if user:
        head += proxy_auth(user)
    with socket.create_connection(("127.0.0.1", port), 10, (source, 0)) as sock:
        sock.sendall((head + "Connection: close\r\n\r\n").encode())
        return read_all(sock)


def records_with(site: Site, **fields: str) -> list[dict[str, Any]]:
    """Access records whose dotted ``fields`` (url__path="/x") have these values."""

    def get(r: dict[str, Any], dotted: str) -> Any:
        for part in dotted.split("__"):
            r = r.get(part, {}) if isinstance(r, dict) else {}
        return r

    return [r for r in site.records() if all(get(r, k) == v for k, v in fields.items())]


# -- proxy auth through the balancer ---------------------------------------------------


@pytest.mark.parametrize(
    "request_line",
    [
        "GET http://www.facebook.com/ HTTP/1.1\r\nHost: www.facebook.com\r\n",
        "CONNECT www.facebook.com:443 HTTP/1.1\r\nHost: www.facebook.com:443\r\n",
    ],
    ids=["plain", "connect"],
)
def test_no_credentials_gets_407_through_balancer(site: Site, request_line: str) -> None:
    """Without credentials the worker's 407 challenge reaches the client through HAProxy."""
    with socket.create_connection(("127.0.0.1", site.port), 10, (CLIENT_B, 0)) as sock:
        sock.sendall((request_line + "Connection: close\r\n\r\n").encode())
        raw = read_all(sock)
    assert status(raw) == 407
    assert b"proxy-authenticate: basic" in raw.lower()


def test_plain_http_with_credentials_through_balancer(site: Site) -> None:
    """A user's plain-HTTP request is authenticated by a worker and reaches the upstream."""
    with client(site.port, "carol") as c:
        r = c.get("http://www.example.org/plain")
    assert r.status_code == 200
    assert r.text.startswith("upstream http: GET /plain")


def test_connect_tls_interception_through_balancer(site: Site, trust: ssl.SSLContext) -> None:
    """An exempt user's CONNECT is authenticated, intercepted and audited by a worker."""
    with client(site.port, "alice", trust) as c:
        r = c.get("https://x.com/through-balancer", headers=JSON)
    assert r.status_code == 200
    assert r.text.startswith("upstream https: GET /through-balancer")
    (rec,) = records_with(site, url__path="/through-balancer")
    assert rec["event"]["action"] == "request-allowed"
    assert rec["user"]["name"] == "alice"
    assert rec["socialgate"]["exemption_id"] == "EX-2026-001"


def test_blocked_user_through_balancer_is_audited(site: Site) -> None:
    """A blocked user gets the block page through HAProxy, and its reference is on record."""
    with client(site.port, "carol") as c:
        r = c.get("http://www.facebook.com/blocked", headers={"Accept": "text/html"})
    assert r.status_code == 403
    ref = r.headers["x-socialgate-ref"]
    deadline = time.monotonic() + 5
    while not records_with(site, event__id=ref) and time.monotonic() < deadline:
        time.sleep(0.05)
    (rec,) = records_with(site, event__id=ref)
    assert rec["user"]["name"] == "carol"


def test_requests_are_spread_over_both_workers(site: Site) -> None:
    """New client connections go to both workers (each writes its own chain)."""
    for n in range(8):
        with client(site.port, "carol") as c:
            assert c.get(f"http://www.facebook.com/spread/{n}").status_code == 403
    time.sleep(0.5)
    served = {
        w.instance
        for w in site.workers
        for r in w.records()
        if r.get("url", {}).get("path", "").startswith("/spread/")
    }
    assert served == {"01", "02"}


# -- the real client address ------------------------------------------------------------


def wait_record(site: Site, ref: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while not (found := records_with(site, event__id=ref)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert found, f"no record {ref}"
    return found[0]


def test_source_address_identity_through_balancer(site: Site, trust: ssl.SSLContext) -> None:
    """The kiosk (127.0.0.2) is known by its own address behind HAProxy, not the balancer's."""
    allowed, _ = tls_request(
        site.port, "www.linkedin.com:443", "www.linkedin.com", "www.linkedin.com", trust,
        path="/kiosk", source=CLIENT_A,
    )  # fmt: skip
    blocked, _ = tls_request(
        site.port, "www.facebook.com:443", "www.facebook.com", "www.facebook.com", trust,
        path="/kiosk", source=CLIENT_A,
    )  # fmt: skip
    assert status(allowed) == 200
    assert status(blocked) == 403
    rec = wait_record(site, ref_of(blocked))
    assert rec["user"]["name"] == "kiosk-reception"
    assert rec["source"]["ip"] == CLIENT_A


def test_records_carry_the_client_address(site: Site) -> None:
    """A proxy-auth user's record names the client's address, not the balancer's."""
    raw = raw_get(site.port, "http://www.facebook.com/address", CLIENT_B, "carol")
    assert status(raw) == 403
    assert wait_record(site, ref_of(raw))["source"]["ip"] == CLIENT_B


@pytest.mark.parametrize("via", ["balancer", "worker"])
def test_spoofed_forwarded_for_claims_nothing(site: Site, via: str) -> None:
    """A client's own X-Forwarded-For naming the kiosk gets it no kiosk rights."""
    port = site.port if via == "balancer" else site.workers[1].port
    raw = raw_get(
        port, "http://www.linkedin.com/spoofed", CLIENT_B, extra=f"X-Forwarded-For: {CLIENT_A}\r\n"
    )
    assert status(raw) == 407  # who is asking is 127.0.0.3, and it has not said who it is
    assert not records_with(site, url__path="/spoofed", event__outcome="success")


# -- one acknowledgement for the whole host ----------------------------------------------


def page(site: Site, user: str, url: str) -> httpx.Response:
    """A page load on a new connection through the balancer (any worker may serve it)."""
    with client(site.port, user) as c:
        return c.get(url, headers={"Accept": "text/html"})


def test_acknowledgement_counts_on_every_worker(site: Site) -> None:
    """Acknowledged once behind the balancer, the reminder is not shown again by any worker."""
    first = page(site, "bob", "http://x.com/feed")
    assert "Professional use only" in first.text
    link = first.text.split('id="acknowledge" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert page(site, "bob", f"http://x.com{link}").status_code == 303
    after = [page(site, "bob", f"http://x.com/after/{n}") for n in range(8)]
    assert [r.text.split(":", 1)[0] for r in after] == ["upstream http"] * 8
    time.sleep(0.5)
    served = {
        r["socialgate"]["chain"]["worker"]
        for r in records_with(site, user__name="bob", event__action="request-allowed")
        if r["url"]["path"].startswith("/after/")
    }
    assert served == {f"{HOSTNAME}-01", f"{HOSTNAME}-02"}
    assert len(records_with(site, user__name="bob", event__action="reminder-acknowledged")) == 1


# -- a worker killed under load ---------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    started: float
    path: str
    status: int  # 0: the request failed (connection reset, timeout)
    ref: str  # the block page's reference, "" otherwise


class Load:
    """Clients sending social requests through the balancer until stopped, each on a new
    connection: carol (blocked, plain HTTP) and alice (exempt, intercepted HTTPS)."""

    def __init__(self, port: int, trust: ssl.SSLContext, threads: int = 3) -> None:
        self.port, self.trust = port, trust
        self.outcomes: list[Outcome] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]
        for t in self.threads:
            t.start()

    def _one(self, path: str, https: bool) -> tuple[int, str]:
        user, url = ("alice", f"https://x.com{path}") if https else (
            "carol", f"http://www.facebook.com{path}")  # fmt: skip
        try:
            with client(self.port, user, self.trust) as c:
                r = c.get(url, headers=JSON)
        except httpx.HTTPError:
            return 0, ""
        return r.status_code, r.headers.get("x-socialgate-ref", "")

    def _run(self, n: int) -> None:
        i = 0
        while not self.stopping.is_set():
            path, started = f"/load/{n}/{i}", time.monotonic()
            code, ref = self._one(path, https=i % 2 == 0)
            with self.lock:
                self.outcomes.append(Outcome(started, path, code, ref))
            i += 1

    def stop(self) -> list[Outcome]:
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        return self.outcomes


def test_killed_worker_is_taken_out_and_its_chain_continues(
    site: Site, trust: ssl.SSLContext
) -> None:
    """kill -9 of a worker under load: HAProxy takes it out, the other serves, it restarts."""
    assert site.balancer is not None
    victim = site.workers[0]
    load = Load(site.port, trust)
    try:
        time.sleep(1)
        victim.kill()
        killed = time.monotonic()
        site.balancer.wait_for({"w01": "DOWN", "w02": "UP"})
        down = time.monotonic()
        time.sleep(1.5)
        victim.start()  # as systemd's Restart=on-failure would
        site.balancer.wait_for({"w01": "UP"})
        up = time.monotonic()
        time.sleep(1.5)
    finally:
        outcomes = load.stop()
    after_down = [o for o in outcomes if o.started > down]
    assert after_down
    assert all(o.status in (200, 403) for o in after_down), after_down
    assert any(o.status in (200, 403) for o in outcomes if killed < o.started < up)
    failed = [o for o in outcomes if o.status not in (200, 403)]
    assert all(o.started < down for o in failed), failed

    # No social request was allowed (or blocked) without its record.
    time.sleep(0.5)
    recorded = {r.get("url", {}).get("path") for r in site.records()}
    refs = {r["event"]["id"] for r in site.records()}
    assert all(o.path in recorded for o in outcomes if o.status == 200)
    assert all(o.ref in refs for o in outcomes if o.status == 403)

    # The restarted worker continues its own chain and serves again.
    recs = victim.records()
    assert {r["socialgate"]["chain"]["worker"] for r in recs} == {f"{HOSTNAME}-01"}
    starts = [r for r in recs if r["event"]["action"] == "audit-started"]
    assert len(starts) == 2
    seqs = [r["socialgate"]["chain"]["seq"] for r in recs]
    assert seqs == list(range(1, len(seqs) + 1))
    assert any(
        r["event"].get("action", "").startswith("request") for r in recs[recs.index(starts[1]) :]
    )


def test_every_chain_verifies(site: Site) -> None:
    """`socialgate audit verify` over the installation's logs: both workers' chains intact."""
    res = subprocess.run(
        [str(BIN / "socialgate"), "--confdir", str(site.etc), "audit", "verify",
         "--seed", str(seed_path(site.root))],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    summary = res.stdout.splitlines()[-1]
    assert summary.startswith("intact:"), res.stdout
    for w in site.workers:
        assert f"{HOSTNAME}-{w.instance}: seq 1-" in summary
    assert " 0 checkpoints" not in summary  # each worker's own checkpoint file was checked
