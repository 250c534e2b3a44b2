"""Policies and helpers shared by the reload, check and exempt tests.

Dates are relative to today so the files never go stale. The policy is
commented on purpose: edits must keep every comment.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from proxy_addons.cli.main import main

BIN = pathlib.Path(sys.executable).parent

CATEGORY = """\
# test list
[facebook.com]
facebook.com
fbcdn.net
[x.com]
x.com
twimg.com
[linkedin.com]
linkedin.com
"""


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def policy_text(extra_exemptions: str = "", *, users: str = "") -> str:
    """A commented policy: a group exemption, a user one, last year's expired one."""
    t = today()
    d = dt.timedelta
    y = t.year
    return f"""\
# Test policy: every comment here must survive an edit.
version: 1
organisation: Test Department
contact: it-security@test.example   # shown on block pages
policy_url: https://intranet.test.example/social-media-policy
timezone: UTC
max_exemption_days: 90              # short, so the limit is easy to test
{users}categories:
  social_networking:
    description: Social networking sites
    domains_files: [categories/social.txt]
blocked_categories: [social_networking]
groups:
  press-office: [alice, bob]
exemptions:
  # Press office
  - id: EX-{y}-001
    group: press-office             # the whole team
    sites: [x.com, linkedin.com]
    access: full
    business_case: Press office posts official statements
    approved_by: d.smith
    granted: {t - d(10)}
    expires: {t + d(30)}            # renew before this
  # Investigators
  - id: EX-{y}-002
    user: dana
    sites: [social_networking]
    access: read-only
    business_case: Open-source research
    approved_by: d.smith
    granted: {t - d(10)}
    expires: {t + d(60)}
  - id: EX-{y - 1}-007
    user: erin
    sites: [facebook.com]
    access: full
    business_case: Campaign that has ended
    approved_by: d.smith
    granted: {t - d(100)}
    expires: {t - d(20)}
{extra_exemptions}
# Revoked entries stay in the file as evidence.
reminder:                           # code-of-conduct page
  every: 24h
  text: |
    Professional use only.
"""


def write_policy(directory: pathlib.Path, text: str | None = None) -> pathlib.Path:
    (directory / "categories").mkdir(parents=True, exist_ok=True)
    (directory / "categories" / "social.txt").write_text(CATEGORY)
    path = directory / "policy.yaml"
    path.write_text(policy_text() if text is None else text)
    return path


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


Socialgate = Callable[..., Run]


def make_runner(capsys: pytest.CaptureFixture[str]) -> Socialgate:
    """Run `socialgate ARGS…` in this process; returns exit code and output."""

    def run(*args: str) -> Run:
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        out, err = capsys.readouterr()
        code = exc.value.code
        return Run(code if isinstance(code, int) else 1, out, err)

    return run


class H2Client:
    """One HTTP/2 connection through the proxy's CONNECT tunnel (httpx prefers HTTP/1.1)."""

    def __init__(self, proxy_port: int, host: str, user: str, password: str, ca: str) -> None:
        import ssl

        import h2.config
        import h2.connection

        from tests.support.client import connect_tunnel

        sock, head = connect_tunnel(proxy_port, f"{host}:443", user, password)
        assert b" 200 " in head.split(b"\r\n", 1)[0], head
        ctx = ssl.create_default_context(cafile=ca)
        ctx.set_alpn_protocols(["h2"])
        self.tls = ctx.wrap_socket(sock, server_hostname=host)
        assert self.tls.selected_alpn_protocol() == "h2"
        self.host = host
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.tls.sendall(self.conn.data_to_send())

    def get(self, path: str) -> int:
        """Send GET on a new stream of the same connection; return the response status."""
        from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset

        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            sid,
            [(":method", "GET"), (":authority", self.host), (":scheme", "https"),
             (":path", path)],
            end_stream=True,
        )  # fmt: skip
        self.tls.sendall(self.conn.data_to_send())
        status = 0
        while True:
            data = self.tls.recv(65536)
            assert data, "connection closed"
            for ev in self.conn.receive_data(data):
                if isinstance(ev, ResponseReceived) and ev.stream_id == sid:
                    status = int(dict(ev.headers)[b":status"])
                elif isinstance(ev, DataReceived):
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, StreamEnded | StreamReset) and ev.stream_id == sid:
                    self.tls.sendall(self.conn.data_to_send())
                    return status
            self.tls.sendall(self.conn.data_to_send())

    def close(self) -> None:
        self.tls.close()
