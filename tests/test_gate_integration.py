"""The gate through a real mitmdump on 127.0.0.1, driven by real HTTP clients."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest

from tests.support.certs import UPSTREAM_CN
from tests.support.client import plain_get, tls_request
from tests.support.policies import KIOSK_IP, PASSWORD
from tests.support.proxy import Proxy
from tests.support.upstream import Servers

pytestmark = pytest.mark.integration

HTML = {"Accept": "text/html,application/xhtml+xml"}


def client(
    proxy: Proxy, user: str | None, trust: ssl.SSLContext | None = None, **kw: Any
) -> httpx.Client:
    return httpx.Client(proxy=proxy.url(user), verify=trust or False, timeout=10, **kw)


def record_for(proxy: Proxy, ref: str) -> dict[str, Any]:
    return proxy.record(ref)


def header(raw: bytes, name: str) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name:
            return v.strip()
    raise AssertionError(f"no {name} header in {head!r}")


def ref_of(resp: httpx.Response) -> str:
    ref = resp.headers["x-socialgate-ref"]
    assert ref in resp.text
    return ref


# -- authentication -------------------------------------------------------------------


def test_no_credentials_gets_407(proxy: Proxy) -> None:
    """Without proxy credentials the proxy asks for them."""
    with client(proxy, None) as c:
        r = c.get("http://www.example.org/")
    assert r.status_code == 407


def test_wrong_password_gets_407(proxy: Proxy) -> None:
    """A wrong password is refused, even right after the right one was cached."""
    with client(proxy, "carol") as c:
        assert c.get("http://www.example.org/").status_code == 200
    with httpx.Client(proxy=proxy.url("carol", "wrong"), timeout=10) as c:
        assert c.get("http://www.example.org/").status_code == 407


# -- non-social traffic ---------------------------------------------------------------


def test_non_social_http_passes_unrecorded(proxy: Proxy, servers: Servers) -> None:
    """Plain HTTP to a non-social site reaches the upstream and leaves no audit record."""
    before = len(proxy.access_records())
    with client(proxy, "carol") as c:
        r = c.get("http://www.example.org/page")
    assert r.status_code == 200
    assert r.text.startswith("upstream http: GET /page")
    assert len(proxy.access_records()) == before


def test_non_social_https_is_passed_through(proxy: Proxy, trust: ssl.SSLContext) -> None:
    """HTTPS to a non-social site is not intercepted: the client sees the upstream's own cert."""
    before = len(proxy.access_records())
    data, issuer = tls_request(
        proxy.port,
        "www.example.org:443",
        "www.example.org",
        "www.example.org",
        trust,
        user="carol",
    )
    assert issuer == UPSTREAM_CN
    assert data.startswith(b"HTTP/1.1 200")
    assert len(proxy.access_records()) == before


# -- blocked users --------------------------------------------------------------------


def test_blocked_user_http_gets_block_page(proxy: Proxy, servers: Servers) -> None:
    """A user without an exemption gets the HTML block page; its reference is in the audit log."""
    with client(proxy, "carol") as c:
        r = c.get("http://www.facebook.com/some/page?q=secret", headers=HTML)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/html")
    assert "no-store" in r.headers["cache-control"]
    for text in (
        "Test Department",
        "www.facebook.com",
        "You do not hold a professional exemption",
        "https://intranet.test.example/social-media-policy",
        "https://intranet.test.example/exemptions",
        "it-security@test.example",
    ):
        assert text in r.text
    ref = ref_of(r)
    rec = record_for(proxy, ref)
    assert rec["event"]["action"] == "request-blocked"
    assert rec["event"]["outcome"] == "failure"
    assert rec["event"]["reason"] == "no-exemption"
    assert rec["user"]["name"] == "carol"
    assert rec["source"]["ip"] == "127.0.0.1"
    assert rec["url"] == {
        "scheme": "http",
        "domain": "www.facebook.com",
        "port": 80,
        "path": "/some/page",
    }
    assert rec["http"] == {"request": {"method": "GET"}, "response": {"status_code": 403}}
    assert rec["rule"]["id"] == "social_networking"
    assert rec["socialgate"]["site"] == "facebook.com"
    assert "www.facebook.com" not in servers.http.hosts()


def test_blocked_user_https_gets_block_page(
    proxy: Proxy, servers: Servers, trust: ssl.SSLContext
) -> None:
    """Over HTTPS the social site is intercepted to show the block page; upstream never sees it."""
    with client(proxy, "carol", trust) as c:
        r = c.get("https://m.facebook.com/", headers=HTML)
    assert r.status_code == 403
    assert "m.facebook.com" in r.text
    rec = record_for(proxy, ref_of(r))
    assert rec["url"]["scheme"] == "https"
    assert rec["socialgate"]["stage"] == "request"
    assert "m.facebook.com" not in servers.https.hosts()


def test_non_browser_gets_text_block(proxy: Proxy) -> None:
    """Clients that do not accept HTML get a short plain-text explanation."""
    with client(proxy, "carol") as c:
        r = c.get("http://x.com/api", headers={"Accept": "application/json"})
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("Blocked by Test Department: x.com")
    assert ref_of(r)


def test_block_page_escapes_reflected_names(proxy: Proxy) -> None:
    """The Host a client sends is reflected escaped, never as markup."""
    with client(proxy, "carol") as c:
        r = c.get("http://www.facebook.com/", headers={**HTML, "Host": "www.facebook.com"})
    assert "<script" not in r.text
    with client(proxy, "carol") as c:
        r = c.get("http://facebook.com/%3Cscript%3Ealert(1)%3C/script%3E", headers=HTML)
    assert r.status_code == 403
    assert "<script>alert" not in r.text


# -- exemptions -----------------------------------------------------------------------


def test_exempt_user_reaches_upstream(
    proxy: Proxy, servers: Servers, trust: ssl.SSLContext
) -> None:
    """A group exemption lets its member through; the allowed record names the exemption."""
    with client(proxy, "alice", trust) as c:
        r = c.get("https://x.com/home")
    assert r.status_code == 200
    assert r.text.startswith("upstream https: GET /home")
    assert "alt-svc" not in r.headers  # no hint to try QUIC around the proxy
    recs = [x for x in proxy.wait_for_records(1) if x["url"].get("path") == "/home"]
    rec = recs[-1]
    assert rec["event"]["action"] == "request-allowed"
    assert rec["event"]["outcome"] == "success"
    assert rec["rule"]["id"] == "EX-2026-001"
    assert rec["socialgate"]["exemption_id"] == "EX-2026-001"
    assert rec["user"]["name"] == "alice"
    assert rec["socialgate"]["groups"] == ["press-office"]


def test_exemption_covers_site_group(proxy: Proxy, trust: ssl.SSLContext) -> None:
    """An exemption for x.com covers twimg.com, listed under [x.com]."""
    with client(proxy, "alice", trust) as c:
        assert c.get("https://pbs.twimg.com/img.png").status_code == 200
        assert c.get("https://www.facebook.com/").status_code == 403


@pytest.mark.parametrize(
    ("method", "status", "reason"),
    [
        ("GET", 200, None),
        ("HEAD", 200, None),
        ("OPTIONS", 200, None),
        ("POST", 403, "read-only"),
        ("PUT", 403, "read-only"),
        ("DELETE", 403, "read-only"),
    ],
)
def test_read_only_exemption(
    proxy: Proxy, trust: ssl.SSLContext, method: str, status: int, reason: str | None
) -> None:
    """A read-only exemption allows reading and blocks posting, per request."""
    with client(proxy, "dana", trust) as c:
        r = c.request(
            method,
            "https://www.facebook.com/post",
            content=b"" if method in ("GET", "HEAD", "OPTIONS") else b"hello",
        )
    assert r.status_code == status
    if reason:
        assert record_for(proxy, r.headers["x-socialgate-ref"])["event"]["reason"] == reason


@pytest.mark.parametrize(
    ("user", "reason", "words"),
    [
        ("erin", "expired", "expired on"),
        ("frank", "not-yet-valid", "starts on"),
        ("gina", "outside-schedule", "covers this site only on"),
    ],
)
def test_exemption_not_in_force(
    proxy: Proxy, trust: ssl.SSLContext, user: str, reason: str, words: str
) -> None:
    """An exemption outside its dates or schedule blocks with the matching reason."""
    with client(proxy, user, trust) as c:
        r = c.get("https://www.facebook.com/", headers=HTML)
    assert r.status_code == 403
    assert words in r.text
    rec = record_for(proxy, ref_of(r))
    assert rec["event"]["reason"] == reason
    assert rec["socialgate"]["exemption_id"] is not None


def test_source_address_identity(proxy: Proxy, trust: ssl.SSLContext) -> None:
    """A host named in identity.source_addresses is identified without proxy auth."""
    assert plain_get(
        proxy.port, "http://www.example.org/", "www.example.org", source=KIOSK_IP
    ).startswith(b"HTTP/1.1 200")
    allowed, _ = tls_request(
        proxy.port,
        "www.linkedin.com:443",
        "www.linkedin.com",
        "www.linkedin.com",
        trust,
        source=KIOSK_IP,
    )
    assert allowed.startswith(b"HTTP/1.1 200")
    blocked, _ = tls_request(
        proxy.port,
        "www.facebook.com:443",
        "www.facebook.com",
        "www.facebook.com",
        trust,
        source=KIOSK_IP,
    )
    assert blocked.startswith(b"HTTP/1.1 403")
    rec = record_for(proxy, header(blocked, "x-socialgate-ref"))
    assert rec["user"]["name"] == "kiosk-reception"
    assert rec["socialgate"]["identity"] == "source-address"
    assert rec["source"]["ip"] == KIOSK_IP


# -- names that disagree --------------------------------------------------------------


def test_connect_to_ip_with_social_sni_is_blocked(proxy: Proxy, trust: ssl.SSLContext) -> None:
    """CONNECT to a non-social IP with a social SNI is social: blocked."""
    data, issuer = tls_request(
        proxy.port,
        "198.51.100.7:443",
        "www.facebook.com",
        "www.facebook.com",
        trust,
        user="carol",
    )
    assert issuer != UPSTREAM_CN
    assert data.startswith(b"HTTP/1.1 403")
    assert b"no-exemption" not in data or b"Reference" in data


def test_connect_to_social_network_ip_without_sni_is_blocked(
    proxy: Proxy, trust: ssl.SSLContext
) -> None:
    """A ClientHello without SNI to an IP in a category's networks is social."""
    data, _ = tls_request(proxy.port, "192.0.2.10:443", None, "192.0.2.10", trust, user="carol")
    assert data.startswith(b"HTTP/1.1 403")


def test_host_differs_from_sni_is_blocked(proxy: Proxy, trust: ssl.SSLContext) -> None:
    """An exempt user whose Host disagrees with the social SNI (domain fronting) is blocked."""
    data, _ = tls_request(
        proxy.port,
        "x.com:443",
        "x.com",
        "www.example.org",
        trust,
        user="alice",
    )
    assert data.startswith(b"HTTP/1.1 403")
    rec = record_for(proxy, header(data, "x-socialgate-ref"))
    assert rec["event"]["reason"] == "name-mismatch"
    assert rec["socialgate"]["name_mismatch"] is True
    assert rec["socialgate"]["names"] == ["x.com", "www.example.org"]


def test_social_host_header_behind_non_social_connect(proxy: Proxy, trust: ssl.SSLContext) -> None:
    """Plain HTTP whose Host names a social site is judged on it, whatever the URL says."""
    with client(proxy, "carol") as c:
        r = c.get("http://www.example.org/", headers={"Host": "www.facebook.com", **HTML})
    assert r.status_code == 403


# -- privacy --------------------------------------------------------------------------


def test_no_password_or_query_in_audit_log(proxy: Proxy, trust: ssl.SSLContext) -> None:
    """After authenticated traffic, neither passwords nor query strings are in the trail."""
    with client(proxy, "alice", trust) as c:
        c.get("https://x.com/search?q=private-words")
    with client(proxy, "carol") as c:
        c.get("http://www.facebook.com/?token=private-words")
    text = proxy.audit_log.read_text()
    assert PASSWORD not in text
    assert PASSWORD not in "".join(proxy.output)  # nor in the operations log
    assert "private-words" not in text
    assert "Authorization" not in text


# -- code-of-conduct reminder ---------------------------------------------------------


def test_reminder_shown_then_acknowledged(
    proxy: Proxy, servers: Servers, trust: ssl.SSLContext
) -> None:
    """An exempt user's first page load shows the code of conduct; acknowledging it continues."""
    servers.clear()
    with client(proxy, "bob", trust) as c:
        first = c.get("https://x.com/feed?tab=1", headers=HTML)
        assert first.status_code == 200
        assert "Professional use only" in first.text
        assert "EX-2026-001" in first.text
        assert servers.https.hosts() == []  # the page load itself was held back
        link = first.text.split('id="acknowledge" href="', 1)[1].split('"', 1)[0]
        link = link.replace("&amp;", "&")
        # another user cannot use bob's link
        with client(proxy, "alice", trust) as other:
            assert other.get(f"https://x.com{link}", headers=HTML).status_code == 400
        ack = c.get(f"https://x.com{link}", headers=HTML)
        assert ack.status_code == 303
        assert ack.headers["location"] == "/feed?tab=1"
        assert c.get("https://x.com/feed?tab=1", headers=HTML).status_code == 200
        # acknowledged: no reminder until the interval has passed
        again = c.get("https://x.com/other", headers=HTML)
    assert again.text.startswith("upstream https: GET /other")
    actions = [
        r["event"]["action"] for r in proxy.records() if r.get("user", {}).get("name") == "bob"
    ]
    assert "reminder-shown" in actions
    assert "reminder-acknowledged" in actions
    shown_ref = first.text.split("Reference ", 1)[1].split("<", 1)[0].strip()
    ack_rec = next(r for r in proxy.records() if r["event"]["action"] == "reminder-acknowledged")
    assert ack_rec["socialgate"]["reminder_ref"] == shown_ref


def test_reminder_not_shown_to_api_calls(proxy: Proxy, trust: ssl.SSLContext) -> None:
    """Background requests (not page loads) are never answered with the reminder."""
    with client(proxy, "alice", trust) as c:
        r = c.get("https://x.com/api/data", headers={"Accept": "application/json"})
    assert r.text.startswith("upstream https: GET /api/data")
