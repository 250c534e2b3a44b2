"""Identity: the credential cache around proxyauth, and who a flow belongs to."""

from __future__ import annotations

import pathlib
from typing import Any, cast

import pytest
from mitmproxy.addons import proxyauth
from mitmproxy.test import taddons, tflow

from proxy_addons.addons.credential_cache import CachingValidator, CredentialCache
from proxy_addons.addons.identity import identify, scrub_password
from proxy_addons.identity import PROXYAUTH, SOURCE_ADDRESS
from proxy_addons.policy.load import load_policy
from tests.support.policies import KIOSK_IP, write_htpasswd, write_policy


class Counting:
    """A validator that accepts one password and counts how often it is asked."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, username: str, password: str) -> bool:
        self.calls += 1
        return password == "right"


def test_cache_skips_repeat_checks() -> None:
    """A verified credential is not checked again within the TTL."""
    inner = Counting()
    v = CachingValidator(inner, ttl=60, size=10)
    assert all(v("alice", "right") for _ in range(100))
    assert inner.calls == 1


def test_cache_never_remembers_failures() -> None:
    """A wrong password pays the full check every time and is never accepted."""
    inner = Counting()
    v = CachingValidator(inner, ttl=60, size=10)
    assert v("alice", "right")
    assert not any(v("alice", "wrong") for _ in range(3))
    assert inner.calls == 4


def test_cache_keys_on_user_and_password() -> None:
    """Another user with the same password, or the same user with another password, is checked."""
    inner = Counting()
    v = CachingValidator(inner, ttl=60, size=10)
    v("alice", "right")
    v("bob", "right")
    assert inner.calls == 2


def test_cache_entries_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the TTL the credential is checked again (a changed password takes effect)."""
    now = [1000.0]
    monkeypatch.setattr("proxy_addons.addons.credential_cache.time.monotonic", lambda: now[0])
    inner = Counting()
    v = CachingValidator(inner, ttl=60, size=10)
    v("alice", "right")
    now[0] += 59
    v("alice", "right")
    now[0] += 2
    v("alice", "right")
    assert inner.calls == 2


def test_cache_is_bounded() -> None:
    """The cache holds at most ``size`` entries, evicting the least recently used."""
    inner = Counting()
    v = CachingValidator(inner, ttl=60, size=2)
    for user in ("a", "b", "c"):
        v(user, "right")
    v("a", "right")  # evicted: checked again
    assert inner.calls == 4
    assert len(v._seen) == 2


def test_cache_holds_no_plaintext() -> None:
    """Neither the password nor the user name is kept in the cache in clear."""
    v = CachingValidator(Counting(), ttl=60, size=10)
    v("alice", "right")
    (key,) = v._seen
    assert b"right" not in key
    assert b"alice" not in key


def test_addon_wraps_proxyauth_validator(tmp_path: pathlib.Path) -> None:
    """The addon puts the cache around proxyauth's htpasswd validator, and rewraps on change."""
    htpasswd = write_htpasswd(tmp_path)
    pa = proxyauth.ProxyAuth()
    cache = CredentialCache()
    with taddons.context(pa, cache) as tctx:
        tctx.configure(pa, proxyauth=f"@{htpasswd}")
        tctx.configure(cache, proxyauth=f"@{htpasswd}")
        assert isinstance(pa.validator, CachingValidator)
        tctx.configure(cache, socialgate_auth_cache_ttl=10)
        assert isinstance(pa.validator, CachingValidator)
        assert not isinstance(pa.validator.inner, CachingValidator)
        assert pa.validator.ttl == 10


@pytest.mark.parametrize(
    ("option", "value"),
    [("socialgate_auth_cache_ttl", -1), ("socialgate_auth_cache_size", -5)],
)
def test_addon_rejects_bad_options(option: str, value: int) -> None:
    """Out-of-range cache settings are refused, naming the option and value."""
    cache = CredentialCache()
    with taddons.context(cache) as tctx, pytest.raises(Exception, match=f"{option}={value}"):
        tctx.configure(cache, **{option: value})


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_policy(write_policy(tmp_path_factory.mktemp("identity")))


def test_identify_proxyauth_user_with_groups(policy: Any) -> None:
    """The proxyauth user is the identity, with the groups the policy gives them."""
    f = tflow.tflow()
    f.metadata["proxyauth"] = ("alice", "pw")
    ident = identify(policy, f)
    assert (ident.user, ident.source, ident.groups) == ("alice", PROXYAUTH, ("press-office",))


def test_identify_source_address(policy: Any) -> None:
    """Without proxy credentials a mapped source address names the user."""
    f = tflow.tflow()
    f.client_conn.peername = (KIOSK_IP, 5000)
    ident = identify(policy, f)
    assert (ident.user, ident.source) == ("kiosk-reception", SOURCE_ADDRESS)
    # An IPv6 socket reports a 4-tuple; mitmproxy's Address type names only (host, port).
    f.client_conn.peername = cast("tuple[str, int]", (f"::ffff:{KIOSK_IP}", 5000, 0, 0))
    assert identify(policy, f).user == "kiosk-reception"


def test_identify_nobody(policy: Any) -> None:
    """No credentials and an unmapped address: no identity (never exempt)."""
    f = tflow.tflow()
    f.client_conn.peername = ("127.0.0.9", 5000)
    assert identify(policy, f).user is None


def test_scrub_password() -> None:
    """The plaintext password proxyauth stores in the flow is removed, the user kept."""
    f = tflow.tflow()
    f.metadata["proxyauth"] = ("alice", "hunter2")
    scrub_password(f)
    assert f.metadata["proxyauth"] == ("alice", "")
