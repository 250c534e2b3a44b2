"""One installation, one trail: the service as deploy/socialgate.service starts it.

After `socialgate init`, the proxy is started exactly as the unit's ExecStart says, from an
empty working directory, and must leave its configuration directory as it found it; an admin
grants and revokes from their home directory; an investigator copies the logs and keys to a
case folder and runs verify, search, stats and a report. Every file created is one the
configuration names, and the admin records are in the one verified trail.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import time

import pytest

from proxy_addons.policy.load import load_policy
from tests.support.client import plain_get
from tests.support.commented_policy import today
from tests.support.policies import write_htpasswd
from tests.support.proxy import BIN, ROOT, launch
from tests.support.units import DEPLOY, UNIT_CONFDIR, environment, exec_start, service_argv

pytestmark = pytest.mark.integration

UNIT = DEPLOY / "socialgate.service"


def unit_exec_start() -> list[str]:
    """ExecStart= of the unit, continuation lines joined, split as systemd would."""
    return exec_start(UNIT)


def unit_environment() -> dict[str, str]:
    return environment(UNIT)


def snapshot(root: pathlib.Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def files(root: pathlib.Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def cli(
    *args: str, cwd: pathlib.Path, env: dict[str, str], ok: bool = True
) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [str(BIN / "socialgate"), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    if ok:
        assert res.returncode == 0, (args, res.stdout, res.stderr)
    return res


class Service:
    """The proxy process as systemd would run it (command, environment, working dir)."""

    def __init__(self, argv: list[str], cwd: pathlib.Path, env: dict[str, str]) -> None:
        self.proc, self.output, self.port = launch(argv, cwd, env, 30)
        if not self.port:
            self.stop()
            raise AssertionError("service did not start:\n" + "".join(self.output))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        return self.proc.returncode


def wait_for(predicate: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_one_installation_one_trail(tmp_path: pathlib.Path) -> None:
    etc, logs, state = tmp_path / "etc", tmp_path / "log", tmp_path / "state"
    home, case = tmp_path / "home", tmp_path / "case"
    for d in (etc, state, home):
        d.mkdir()
    shutil.copy(ROOT / "policies" / "policy.yaml", etc / "policy.yaml")
    shutil.copytree(ROOT / "policies" / "categories", etc / "categories")
    write_htpasswd(etc)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALGATE_")}

    # IT: init once (twice: it is idempotent), then the service's own listen address.
    htpasswd = str(etc / "htpasswd")
    seed = tmp_path / "offline" / "verification.seed"  # leaves the host: removable media
    seed.parent.mkdir()
    init = (
        "--confdir", str(etc), "init", "--log-dir", str(logs), "--htpasswd", htpasswd,
        "--seed", str(seed),
    )  # fmt: skip
    out = cli(*init, cwd=home, env=env).stdout
    assert "SHA256:" in out
    cli(*init, cwd=home, env=env)
    config = etc / "config.yaml"
    text = config.read_text()
    config.write_text(
        text.replace("listen_host: 0.0.0.0", "listen_host: 127.0.0.1").replace(
            "listen_port: 8080", "listen_port: 0"
        )
    )
    assert {f for f in files(logs) if not f.startswith("seal/")} == {"admin-audit.jsonl"}
    assert len(list((logs / "seal").glob("*.state"))) == 2  # the proxy's, the admin chain's

    # The service, as the unit starts it: from an empty working directory.
    argv = unit_exec_start()
    assert pathlib.Path(argv[0]).name == "socialgate"
    argv = [str(BIN / "socialgate"), *(a.replace(UNIT_CONFDIR, str(etc)) for a in argv[1:])]
    service_env = dict(env)
    for name, value in unit_environment().items():
        service_env[name] = value.replace(UNIT_CONFDIR, str(etc))
    before = snapshot(etc)
    service = Service(argv, state, service_env)
    try:
        raw = plain_get(service.port, "http://www.facebook.com/", "www.facebook.com")
        assert raw.startswith(b"HTTP/1.1 407") or b" 403 " in raw.split(b"\r\n", 1)[0]
        assert snapshot(etc) == before, "the service wrote to its read-only configuration"

        # The admin, from their home directory, with the installation's configuration.
        admin_env = dict(env, SOCIALGATE_CONFDIR=str(etc))
        grant = cli(
            "exempt", "grant", "--user", "carol", "--sites", "facebook.com", "--access", "full",
            "--business-case", "Runs the recruitment campaign", "--approved-by", "d.smith",
            "--expires", str(today()), cwd=home, env=admin_env,
        )  # fmt: skip
        ex_id = grant.stdout.split()[1].rstrip(":")
        typo = cli(
            "exempt", "grant", "--user", "carol", "--sites", "facebok.com", "--access", "full",
            "--business-case", "x", "--approved-by", "d.smith", "--expires", str(today()),
            cwd=home, env=admin_env, ok=False,
        )  # fmt: skip
        assert typo.returncode == 2
        cli("exempt", "revoke", ex_id, "--by", "e.admin", "--reason", "Campaign over",
            cwd=home, env=admin_env)  # fmt: skip
        audit = logs / "audit.jsonl"
        final = load_policy(str(etc / "policy.yaml")).sha256
        wait_for(lambda: final in audit.read_text())  # the service reloaded the revocation
    finally:
        assert service.stop() == 0, "".join(service.output)

    # Every file created is one the configuration names.
    assert list(state.iterdir()) == []
    assert list(home.iterdir()) == []
    assert {f for f in files(logs) if not f.startswith("seal/")} == {
        "audit.jsonl", "audit.checkpoints", "admin-audit.jsonl", "admin-audit.checkpoints",
    }  # fmt: skip
    assert files(etc) - set(before) == {"policy.yaml.lock"}  # the admins' edit lock

    # The investigator: copies of the logs and keys, no policy, no configuration.
    (case / "keys").mkdir(parents=True)
    shutil.copytree(logs, case / "logs")
    shutil.copy(seed, case / "keys" / "audit-verification.seed")
    shutil.copy(etc / "keys" / "audit-signing.pub", case / "keys")
    verify = cli("audit", "verify", cwd=case, env=env)
    assert verify.stdout.startswith("intact:") or "\nintact:" in verify.stdout, verify.stdout
    assert "2 chains" in verify.stdout
    assert re.search(r"admin-audit\.jsonl: seq 1-4", verify.stdout), verify.stdout  # 2 sealed
    found = cli("audit", "search", "--format", "json", cwd=case, env=env)
    actions = [json.loads(line)["event"]["action"] for line in found.stdout.splitlines()]
    assert {"audit-started", "exemption-granted", "exemption-revoked"} <= set(actions)
    cli("audit", "stats", "--by", "site", cwd=case, env=env)
    report = cli("audit", "report", "--user", "e.admin", "--html", "case.html", "--format",
                 "json", cwd=case, env=env)  # fmt: skip
    data = json.loads(report.stdout)
    assert data["integrity"]["ok"] is True
    assert [e["event"] for e in data["events"]] == ["exemption-revoked"]
    assert (case / "case.html").exists()


# -- several workers per host: the template unit and the target -------------------------


def unit_lines(name: str) -> list[str]:
    return [x.strip() for x in (DEPLOY / name).read_text().splitlines()]


@pytest.mark.parametrize(
    "line",
    [
        "PartOf=socialgate.target",  # stop and restart reach every worker
        "ReloadPropagatedFrom=socialgate.target",  # so does reload (PartOf= does not carry it)
        "ExecReload=/bin/kill -HUP $MAINPID",  # reload is the policy re-read, never a restart
        "WantedBy=socialgate.target",  # `systemctl enable socialgate@NN` joins the target
        "Restart=on-failure",  # a killed worker comes back
        "RestartPreventExitStatus=2",  # a bad configuration does not loop
    ],
)
def test_worker_template_is_part_of_the_target(line: str) -> None:
    """socialgate@.service ties every worker to socialgate.target for start, stop and reload."""
    assert line in unit_lines("socialgate@.service")


@pytest.mark.parametrize(
    "own",
    ["--listen-port", "--audit-log", "socialgate_audit_checkpoints=", "socialgate_audit_worker="],
)
def test_each_worker_has_its_own(own: str) -> None:
    """Two instances differ in their port, audit log, checkpoint file and chain id."""
    paths = {UNIT_CONFDIR: pathlib.Path("/etc/sg")}

    def value(instance: str) -> str:
        argv = service_argv(DEPLOY / "socialgate@.service", {"i": instance, "l": "h"}, paths)
        i = next(n for n, a in enumerate(argv) if a.startswith(own))
        return argv[i + 1] if own.startswith("--") else argv[i]

    assert value("01") != value("02")
    assert "01" in value("01")


def test_worker_template_reads_the_shared_configuration() -> None:
    """Every worker reads the one config.yaml (policy, keys, proxyauth) of the installation."""
    argv = exec_start(DEPLOY / "socialgate@.service")
    assert argv[1:4] == ["--confdir", UNIT_CONFDIR, "run"]
    assert environment(DEPLOY / "socialgate@.service") == {"SOCIALGATE_CONFDIR": UNIT_CONFDIR}
