"""Shared fixtures: local upstreams, test policies, a real proxy on 127.0.0.1."""

from __future__ import annotations

import pathlib
import ssl
from collections.abc import Iterator

import pytest

from tests.support.certs import UPSTREAM_NAMES, make_cert
from tests.support.policies import write_htpasswd, write_policy
from tests.support.proxy import Proxy, authenticating_proxy, start_proxy
from tests.support.upstream import Servers
from tests.support.wire import WireServers


@pytest.fixture(scope="session")
def upstream_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    return make_cert(tmp_path_factory.mktemp("certs"), UPSTREAM_NAMES)


@pytest.fixture(scope="session")
def servers(upstream_cert: tuple[pathlib.Path, pathlib.Path]) -> Iterator[Servers]:
    s = Servers(str(upstream_cert[0]), str(upstream_cert[1]))
    yield s
    s.close()


@pytest.fixture(scope="session")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("policy")
    write_policy(d)
    write_htpasswd(d)
    return d


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory, policy_dir: pathlib.Path, servers: Servers
) -> Iterator[Proxy]:
    p = start_proxy(tmp_path_factory.mktemp("proxy"), policy_dir, servers)
    yield p
    p.stop()


@pytest.fixture
def trust(proxy: Proxy, upstream_cert: tuple[pathlib.Path, pathlib.Path]) -> ssl.SSLContext:
    """Trusts mitmproxy's CA (intercepted flows) and the upstream's own cert (passed through)."""
    ctx = ssl.create_default_context(cafile=str(proxy.ca))
    ctx.load_verify_locations(cafile=str(upstream_cert[0]))
    return ctx


@pytest.fixture(scope="session")
def wire(upstream_cert: tuple[pathlib.Path, pathlib.Path]) -> Iterator[WireServers]:
    """Upstreams that record raw bytes: the proof of what reached a site."""
    w = WireServers(str(upstream_cert[0]), str(upstream_cert[1]))
    yield w
    w.close()


@pytest.fixture(scope="module")
def wire_proxy(
    tmp_path_factory: pytest.TempPathFactory, policy_dir: pathlib.Path, wire: WireServers
) -> Iterator[Proxy]:
    """A real mitmdump with socialgate whose every server connection goes to `wire`."""
    workdir = tmp_path_factory.mktemp("wire-proxy")
    p = authenticating_proxy(workdir, policy_dir, wire.http.port, wire.https.port)
    yield p
    p.stop()


@pytest.fixture(autouse=True)
def _no_installation_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests name their files themselves: an installation's $SOCIALGATE_CONFDIR is ignored."""
    monkeypatch.delenv("SOCIALGATE_CONFDIR", raising=False)
