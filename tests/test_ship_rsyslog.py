"""End to end: a real mitmdump ships its checkpoints to a real rsyslogd on loopback, and
`audit verify` over rsyslog's file catches a rewrite the host's own files no longer show."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from proxy_addons.audit.keys import load_or_create_secret, load_or_create_signing_key
from proxy_addons.audit.shipped import checkpoint_in
from tests.support.attacker import drop_last, edit_user, resign_checkpoints, rewrite_log
from tests.support.client import plain_get
from tests.support.policies import KIOSK_IP
from tests.support.proxy import Proxy, start_proxy
from tests.support.syslog import Rsyslog, refused_port, rsyslogd_or_skip, wait_for
from tests.support.upstream import Servers

REQUESTS = 7


@dataclass(frozen=True)
class Run:
    """What one proxy run left behind: its files and the collector's two files."""

    dir: pathlib.Path
    log: pathlib.Path
    checkpoints: pathlib.Path
    key: pathlib.Path
    signing_key: pathlib.Path
    pub: pathlib.Path
    traditional: pathlib.Path
    rfc5424: pathlib.Path
    output: str

    def copy(self, to: pathlib.Path) -> Run:
        """The same run in another directory (for a test to tamper with)."""
        shutil.copytree(self.dir, to)
        moved = {
            name: to / getattr(self, name).relative_to(self.dir)
            for name in ("log", "checkpoints", "key", "signing_key", "pub", "traditional",
                         "rfc5424")
        }  # fmt: skip
        return Run(to, output=self.output, **moved)


def checkpoint_lines(path: pathlib.Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    found = (checkpoint_in(line) for line in path.read_text().splitlines())
    return [c for c in found if c is not None]


@pytest.fixture(scope="module", params=["tcp", "udp"])
def run(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    policy_dir: pathlib.Path,
    servers: Servers,
) -> Run:
    rsyslogd_or_skip()
    scheme = request.param
    root = tmp_path_factory.mktemp(f"ship-{scheme}")
    rsyslog = Rsyslog(root / "collector").start()
    try:
        proxy = _traffic(root / "proxy", rsyslog, scheme, policy_dir, servers)
        local = root / "proxy" / "audit.checkpoints"
        wait_for(
            lambda: len(checkpoint_lines(rsyslog.rfc5424)) >= len(local.read_text().splitlines()),
            10, "every checkpoint at the collector",
        )  # fmt: skip
    finally:
        rsyslog.stop()
    workdir = root / "proxy"
    return Run(
        root, workdir / "audit.jsonl", local, workdir / "keys/audit-hmac.key",
        workdir / "keys/audit-signing.key", workdir / "keys/audit-signing.pub",
        rsyslog.traditional, rsyslog.rfc5424, "".join(proxy.output),
    )  # fmt: skip


def _traffic(
    workdir: pathlib.Path,
    rsyslog: Rsyslog,
    scheme: str,
    policy_dir: pathlib.Path,
    servers: Servers,
) -> Proxy:
    """A proxy shipping to ``rsyslog`` over ``scheme``: blocked requests, then stopped."""
    port = rsyslog.tcp_port if scheme == "tcp" else rsyslog.udp_port
    workdir.mkdir()
    proxy = start_proxy(
        workdir, policy_dir, servers,
        options=("--set", f"socialgate_checkpoint_syslog={scheme}://127.0.0.1:{port}",
                 "--set", "socialgate_audit_checkpoint_records=2"),
    )  # fmt: skip
    try:
        for _ in range(REQUESTS):
            raw = plain_get(proxy.port, "http://www.facebook.com/", "www.facebook.com",
                            source=KIOSK_IP)  # fmt: skip
            assert raw.startswith(b"HTTP/1.1 403")
        proxy.wait_for_records(REQUESTS)
    finally:
        proxy.stop()
    return proxy


def verify(r: Run, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(pathlib.Path(sys.executable).parent / "socialgate"), "audit", "verify",
        "--key", str(r.key), "--pubkey", str(r.pub), *args, str(r.log),
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=r.dir, capture_output=True, text=True, timeout=60, check=False)


def test_every_checkpoint_reaches_the_collector(run: Run) -> None:
    """The collector holds each checkpoint of the local file, the last (at stop) included."""
    local = [json.loads(line) for line in run.checkpoints.read_text().splitlines()]
    assert len(local) >= REQUESTS // 2
    for path in (run.traditional, run.rfc5424):
        assert sorted(checkpoint_lines(path), key=lambda c: int(str(c["n"]))) == local
    assert "shipping checkpoints of" in run.output


@pytest.mark.parametrize("which", ["traditional", "rfc5424"])
def test_verify_over_rsyslog_file_intact(run: Run, which: str) -> None:
    """`audit verify --checkpoints <rsyslog file>`: intact, other messages only noted."""
    res = verify(run, "--checkpoints", str(getattr(run, which)))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "skipped:" in res.stdout  # rsyslogd's own start message and the probe
    assert res.stdout.splitlines()[-1].startswith("intact: ")


def test_rewrite_caught_by_the_shipped_copy(run: Run, tmp_path: pathlib.Path) -> None:
    """Root with both keys re-seals an edited log and re-signs the checkpoint file: the host's
    files verify, rsyslog's copy does not."""
    r = run.copy(tmp_path / "case")
    rewrite_log(r.log, load_or_create_secret(r.key), edit_user("mallory", 4))
    resign_checkpoints(r.checkpoints, load_or_create_signing_key(r.signing_key), r.log)
    assert verify(r, "--checkpoints", str(r.checkpoints)).returncode == 0
    res = verify(r, "--checkpoints", str(r.rfc5424))
    assert res.returncode == 1
    assert "does not match signed checkpoint" in res.stdout.splitlines()[0]


def test_truncation_caught_by_the_shipped_copy(run: Run, tmp_path: pathlib.Path) -> None:
    """The tail cut and the checkpoint file cut to match: rsyslog's copy proves the cut."""
    r = run.copy(tmp_path / "case")
    rewrite_log(r.log, load_or_create_secret(r.key), drop_last(4))
    resign_checkpoints(r.checkpoints, load_or_create_signing_key(r.signing_key), r.log)
    assert verify(r, "--checkpoints", str(r.checkpoints)).returncode == 0
    res = verify(r, "--checkpoints", str(r.traditional))
    assert res.returncode == 1
    assert "tail truncated" in res.stdout


def test_collector_down_never_holds_traffic(
    tmp_path: pathlib.Path, policy_dir: pathlib.Path, servers: Servers
) -> None:
    """With nothing listening, requests are answered at once; one WARNING says so, and the
    health status file shows shipping failing."""
    status = tmp_path / "status.json"
    with refused_port() as port:
        proxy = start_proxy(
            tmp_path, policy_dir, servers,
            options=("--set", f"socialgate_checkpoint_syslog=tcp://127.0.0.1:{port}",
                     "--set", "socialgate_audit_checkpoint_records=1",
                     "--set", f"socialgate_status_file={status}"),
        )  # fmt: skip
        try:
            for _ in range(5):
                started = time.monotonic()
                raw = plain_get(proxy.port, "http://www.facebook.com/", "www.facebook.com",
                                source=KIOSK_IP)  # fmt: skip
                assert raw.startswith(b"HTTP/1.1 403")
                assert time.monotonic() - started < 2
            proxy.wait_for_records(5)
            deadline = time.monotonic() + 12  # the status file is refreshed every 5 s
            shipping: dict[str, object] = {}
            while time.monotonic() < deadline:
                shipping = json.loads(status.read_text())["checkpoint_shipping"]
                if shipping["state"] == "failing":
                    break
                time.sleep(0.2)
            assert shipping["state"] == "failing", shipping
            assert shipping["target"] == f"tcp://127.0.0.1:{port}"
        finally:
            proxy.stop()
    output = "".join(proxy.output)
    assert output.count(f"checkpoint shipping to tcp://127.0.0.1:{port} failing") == 1
    # The local file keeps growing while the collector is down (the group commit may put
    # several of the 7 records under one checkpoint, so not one checkpoint each).
    assert len((tmp_path / "audit.checkpoints").read_text().splitlines()) >= 3


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("tcp://collector", "socialgate_checkpoint_syslog=tcp://collector: the port is missing"),
        ("syslog.example.org", "socialgate_checkpoint_syslog=syslog.example.org: expected"),
    ],
)
def test_bad_target_refused_at_start(
    tmp_path: pathlib.Path, policy_dir: pathlib.Path, value: str, words: str
) -> None:
    """A bad target stops mitmdump at start with one line naming the option and value."""
    proxy = Proxy(
        tmp_path, policy_dir / "policy.yaml", tmp_path / "audit.jsonl", 1, 2,
        options=("--set", f"socialgate_checkpoint_syslog={value}"),
    )  # fmt: skip
    res = subprocess.run(
        proxy.cmd, cwd=tmp_path, env=proxy.env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode != 0
    assert words in res.stdout + res.stderr
