"""Both ways of starting the proxy, start-up errors, and the optional behaviours."""

from __future__ import annotations

import pathlib
import ssl
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.certs import UPSTREAM_CN
from tests.support.client import connect_tunnel, tls_request
from tests.support.proxy import BIN, Proxy, start_proxy
from tests.support.upstream import Servers

pytestmark = pytest.mark.integration

HTML = {"Accept": "text/html"}


def trust_for(proxy: Proxy, upstream_cert: tuple[pathlib.Path, pathlib.Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(proxy.ca))
    ctx.load_verify_locations(cafile=str(upstream_cert[0]))
    return ctx


# -- `socialgate run` -----------------------------------------------------------------


def test_socialgate_run_blocks_and_audits(
    tmp_path: pathlib.Path, policy_dir: pathlib.Path, servers: Servers
) -> None:
    """`socialgate run --policy P --audit-log F --listen-host H --listen-port N -- …` works."""
    proxy = start_proxy(tmp_path, policy_dir, servers, via="run")
    try:
        with httpx.Client(proxy=proxy.url("carol"), timeout=10) as c:
            assert c.get("http://www.example.org/").status_code == 200
            r = c.get("http://www.facebook.com/", headers=HTML)
        assert r.status_code == 403
        ref = r.headers["x-socialgate-ref"]
        assert proxy.record(ref)["event"]["action"] == "request-blocked"
    finally:
        assert proxy.stop() == 0
    actions = [rec["event"]["action"] for rec in proxy.records()]
    assert actions[0] == "audit-started"
    assert "policy-loaded" in actions
    assert actions[-1] == "audit-stopped"


def run_cli(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "socialgate"), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("policy_text", "message"),
    [
        (None, "policy.yaml"),  # missing file
        ("version: 1\norganisation: [unclosed\n", "policy.yaml:3"),  # YAML reports the end
        ("version: 2\n", "policy.yaml:1"),
    ],
)
def test_socialgate_run_refuses_bad_policy(
    tmp_path: pathlib.Path, policy_text: str | None, message: str
) -> None:
    """A missing or invalid policy stops `socialgate run` with one line and exit status 2."""
    if policy_text is not None:
        (tmp_path / "policy.yaml").write_text(policy_text)
    res = run_cli(
        "run", "--policy", str(tmp_path / "policy.yaml"), "--listen-port", "0", cwd=tmp_path
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert message in lines[0]
    assert "Traceback" not in res.stderr + res.stdout


def test_socialgate_run_refuses_unsupported_mode(
    tmp_path: pathlib.Path, policy_dir: pathlib.Path
) -> None:
    """A proxy mode that could carry QUIC or skip proxy auth is refused at start."""
    res = run_cli(
        "run",
        "--policy",
        str(policy_dir / "policy.yaml"),
        "--listen-port",
        "0",
        "--",
        "--mode",
        "wireguard",
        cwd=tmp_path,
    )
    assert res.returncode == 2
    assert "mode=wireguard" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_mitmdump_script_refuses_bad_policy(tmp_path: pathlib.Path) -> None:
    """`mitmdump -s` with a bad policy exits instead of running without the gate."""
    (tmp_path / "policy.yaml").write_text("version: 1\nbogus_key: 1\n")
    proxy = Proxy(tmp_path, tmp_path / "policy.yaml", tmp_path / "audit.jsonl", 1, 2)
    res = subprocess.run(
        proxy.cmd, cwd=tmp_path, env=proxy.env, capture_output=True, text=True, timeout=60
    )
    # mitmproxy loads -s scripts after it starts listening; until it exits the gate
    # (present, without a policy) blocks everything.
    assert res.returncode != 0
    assert "policy.yaml:2" in res.stdout + res.stderr


# -- streamed uploads -----------------------------------------------------------------


def test_streamed_upload_to_social_site_never_reaches_upstream(
    tmp_path: pathlib.Path, policy_dir: pathlib.Path, servers: Servers
) -> None:
    """A chunked upload to a blocked site is killed; the upstream receives nothing."""
    proxy = start_proxy(tmp_path, policy_dir, servers, options=("--set", "stream_large_bodies=1k"))
    try:
        servers.clear()

        def body() -> Iterator[bytes]:
            for _ in range(64):
                yield b"x" * 4096

        with httpx.Client(proxy=proxy.url("carol"), timeout=10) as c:
            with pytest.raises(httpx.HTTPError):
                c.post("http://upload.facebook.com/upload", content=body())
            # the same upload to a non-social site streams through
            ok = c.post("http://www.example.org/upload", content=body())
        assert ok.status_code == 200
        assert servers.http.hosts() == ["www.example.org"]
        (rec,) = proxy.wait_for_records(1)
        assert rec["event"]["reason"] == "no-exemption"
        assert rec["socialgate"]["enforcement"] == "killed"
        assert rec["http"]["request"]["method"] == "POST"
    finally:
        proxy.stop()


# -- socialgate_intercept_social=false ------------------------------------------------


@pytest.fixture(scope="module")
def no_intercept(
    tmp_path_factory: pytest.TempPathFactory, policy_dir: pathlib.Path, servers: Servers
) -> Iterator[Proxy]:
    p = start_proxy(
        tmp_path_factory.mktemp("nointercept"),
        policy_dir,
        servers,
        options=("--set", "socialgate_intercept_social=false"),
    )
    yield p
    p.stop()


def test_without_interception_blocked_connect_gets_403(no_intercept: Proxy) -> None:
    """With interception off, a blocked user's CONNECT is refused with 403 and recorded."""
    before = len(no_intercept.access_records())
    sock, head = connect_tunnel(no_intercept.port, "www.facebook.com:443", "carol")
    sock.close()
    assert head.startswith(b"HTTP/1.1 403")
    rec = no_intercept.wait_for_records(before + 1)[before]
    assert rec["event"]["action"] == "connection-blocked"
    assert rec["event"]["reason"] == "no-exemption"


def test_without_interception_exempt_user_is_passed_through(
    no_intercept: Proxy, upstream_cert: tuple[pathlib.Path, pathlib.Path]
) -> None:
    """A full exemption passes the TLS through untouched, recorded once at CONNECT."""
    before = len(no_intercept.access_records())
    data, issuer = tls_request(
        no_intercept.port,
        "x.com:443",
        "x.com",
        "x.com",
        trust_for(no_intercept, upstream_cert),
        user="alice",
    )
    assert issuer == UPSTREAM_CN
    assert data.startswith(b"HTTP/1.1 200")
    recs = no_intercept.wait_for_records(before + 1)[before:]
    assert [r["event"]["action"] for r in recs] == ["connection-allowed"]
    assert recs[0]["rule"]["id"] == "EX-2026-001"


def test_without_interception_read_only_blocks(no_intercept: Proxy) -> None:
    """A read-only exemption cannot be enforced without interception: blocked, and said so."""
    before = len(no_intercept.access_records())
    sock, head = connect_tunnel(no_intercept.port, "www.facebook.com:443", "dana")
    sock.close()
    assert head.startswith(b"HTTP/1.1 403")
    rec = no_intercept.wait_for_records(before + 1)[before]
    assert rec["event"]["reason"] == "read-only-not-enforceable"


# -- one attempt, one record ----------------------------------------------------------


def test_abandoned_tunnel_is_still_recorded(proxy: Proxy, trust: ssl.SSLContext) -> None:
    """A blocked CONNECT whose client gives up before any request still leaves a record."""
    before = len(proxy.access_records())
    sock, head = connect_tunnel(proxy.port, "www.facebook.com:443", "carol")
    assert head.startswith(b"HTTP/1.1 200")
    sock.close()
    recs = proxy.wait_for_records(before + 1)[before:]
    assert len(recs) == 1
    assert recs[0]["event"]["action"] == "connection-blocked"
    assert recs[0]["socialgate"]["stage"] == "connect"


def test_one_record_per_blocked_https_request(proxy: Proxy, trust: ssl.SSLContext) -> None:
    """A blocked HTTPS request yields exactly one record (not one per CONNECT and request)."""
    before = len(proxy.access_records())
    data, _ = tls_request(
        proxy.port,
        "www.facebook.com:443",
        "www.facebook.com",
        "www.facebook.com",
        trust,
        user="carol",
    )
    assert data.startswith(b"HTTP/1.1 403")
    proxy.wait_for_records(before + 1)
    time.sleep(0.3)  # the tunnel has closed: a second record would be on disk by now
    recs = proxy.access_records()[before:]
    assert [r["socialgate"]["stage"] for r in recs] == ["request"]


# -- the audit trail fails closed ------------------------------------------------------


def test_allowed_traffic_stops_when_the_audit_log_is_removed(
    tmp_path: pathlib.Path,
    policy_dir: pathlib.Path,
    servers: Servers,
    upstream_cert: tuple[pathlib.Path, pathlib.Path],
) -> None:
    """If allowed social traffic can no longer be recorded, it is blocked (audit-unavailable)."""
    proxy = start_proxy(tmp_path, policy_dir, servers)
    try:
        trust = trust_for(proxy, upstream_cert)
        with httpx.Client(proxy=proxy.url("alice"), verify=trust, timeout=10) as c:
            assert c.get("https://x.com/before").status_code == 200
            proxy.audit_log.unlink()
            r = c.get("https://x.com/after")
            assert r.status_code == 403
            assert "could not be written" in r.text
            # non-social traffic is not recorded, so it is unaffected
            assert c.get("http://www.example.org/").status_code == 200
        assert "x.com/after" not in " ".join(servers.https.hosts())
        assert all(s.path != "/after" for s in servers.https.requests)
    finally:
        proxy.stop()
    assert "Allowed social traffic is BLOCKED (audit-unavailable)" in "".join(proxy.output)


@pytest.mark.parametrize(
    "options",
    [
        ("--set", "socialgate_intercept_social=maybe"),  # mitmproxy cannot parse it
        ("--set", "socialgate_audit_log=a.jsonl", "--set", "socialgate_audit_log=b.jsonl"),
    ],
)
def test_mitmdump_script_refuses_unparseable_options(
    tmp_path: pathlib.Path, policy_dir: pathlib.Path, options: tuple[str, ...]
) -> None:
    """A --set value mitmproxy cannot apply stops the proxy; it never runs without the gate."""
    proxy = Proxy(
        tmp_path, policy_dir / "policy.yaml", tmp_path / "audit.jsonl", 1, 2, options=options
    )
    res = subprocess.run(
        proxy.cmd, cwd=tmp_path, env=proxy.env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode != 0
    assert "refusing to run without the gate" in res.stdout + res.stderr
