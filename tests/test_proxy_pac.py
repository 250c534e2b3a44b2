"""deploy/proxy.pac: every browser gets every proxy host, starting at its own, spread evenly.

The PAC file is JavaScript. When Node.js is on the machine (it is on the project's machines,
not a Debian default) the file is evaluated with the browser's PAC helpers stubbed; without
it those tests are skipped and only the file's structure is checked in Python.
"""

from __future__ import annotations

import collections
import json
import re
import shutil
import subprocess

import pytest

from tests.support.units import DEPLOY

PAC = DEPLOY / "proxy.pac"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="no node: the PAC file is not evaluated")

# The browser's PAC helpers, as far as the file uses them (myIpAddress is set per call).
HARNESS = """
var me = "127.0.0.1";
function myIpAddress() { return me; }
function isPlainHostName(h) { return h.indexOf(".") < 0; }
function shExpMatch(s, p) {
  var re = new RegExp("^" + p.replace(/[.+^${}()|[\\]\\\\]/g, "\\\\$&")
    .replace(/\\*/g, ".*").replace(/\\?/g, ".") + "$");
  return re.test(s);
}
%s
var out = [];
var cases = JSON.parse(process.argv[1]);
for (var i = 0; i < cases.length; i++) {
  me = cases[i][0];
  out.push(FindProxyForURL("https://" + cases[i][1] + "/", cases[i][1]));
}
console.log(JSON.stringify(out));
"""


def hosts() -> list[str]:
    text = PAC.read_text()
    block = text.split("var PROXIES = [", 1)[1].split("];", 1)[0]
    return re.findall(r'"([^"]+)"', block)


def find_proxy(cases: list[tuple[str, str]]) -> list[str]:
    """FindProxyForURL for each (client address, host), evaluated by Node.js."""
    assert NODE is not None
    res = subprocess.run(
        [NODE, "-e", HARNESS % PAC.read_text(), json.dumps(cases)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return list(json.loads(res.stdout))


def test_pac_lists_several_proxy_hosts() -> None:
    """The file names at least two proxy hosts, each host:port."""
    assert len(hosts()) >= 2
    assert all(re.fullmatch(r"[a-z0-9.-]+:\d+", h) for h in hosts())


def test_pac_has_no_direct_fallback_for_outside_sites() -> None:
    """DIRECT appears only for internal names: with every proxy down, nothing goes unfiltered."""
    returns = re.findall(r"return ([^;]+);", PAC.read_text())
    assert returns.count('"DIRECT"') == 1
    assert (
        '"DIRECT"'
        not in PAC.read_text()
        .split("function socialgateProxies", 1)[1]
        .split("function FindProxyForURL", 1)[0]
    )


@needs_node
@pytest.mark.parametrize("client", ["10.1.2.3", "10.200.7.41", "192.168.0.9", "127.0.0.1"])
def test_every_client_gets_every_proxy_once(client: str) -> None:
    """The answer lists every proxy host exactly once, so the browser can fail over to each."""
    (answer,) = find_proxy([(client, "www.facebook.com")])
    listed = [p.removeprefix("PROXY ") for p in answer.split("; ")]
    assert sorted(listed) == sorted(hosts())


@needs_node
def test_a_client_keeps_its_host() -> None:
    """The same machine gets the same order for every site (it keeps landing on one host)."""
    answers = find_proxy([("10.1.2.3", h) for h in ("x.com", "www.example.org", "a.b.c")])
    assert len(set(answers)) == 1


@needs_node
def test_clients_are_spread_evenly() -> None:
    """Over 3,000 addresses of one office, each host is first for about a third of them."""
    clients = [f"10.20.{n // 250}.{n % 250 + 1}" for n in range(3000)]
    first = collections.Counter(
        a.split(";")[0] for a in find_proxy([(c, "x.com") for c in clients])
    )
    share = len(clients) / len(hosts())
    assert len(first) == len(hosts())
    assert all(0.85 * share < n < 1.15 * share for n in first.values()), first


@needs_node
@pytest.mark.parametrize("host", ["intranet", "wiki.internal.example.org"])
def test_internal_names_go_direct(host: str) -> None:
    """Plain host names and the internal domain bypass the proxies."""
    assert find_proxy([("10.1.2.3", host)]) == ["DIRECT"]
