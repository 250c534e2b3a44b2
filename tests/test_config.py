"""One configuration for the proxy and every command: config.yaml in the confdir; init."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
from typing import Any

import pytest

from proxy_addons.config import load_settings, read_config
from proxy_addons.errors import ConfigError
from tests.support.cli import Socialgate, make_runner
from tests.support.commented_policy import today, write_policy
from tests.support.proxy import BIN, ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
def sg(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Socialgate:
    monkeypatch.delenv("SOCIALGATE_POLICY", raising=False)
    monkeypatch.delenv("SOCIALGATE_CONFDIR", raising=False)
    return make_runner(capsys)


def files_under(root: pathlib.Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_paths_are_relative_to_the_file_never_the_cwd(tmp_path: pathlib.Path) -> None:
    """A relative path in config.yaml is read against the file's directory."""
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "config.yaml").write_text(
        "socialgate_policy: policy.yaml\n"
        "socialgate_audit_log: /var/log/sg/audit.jsonl\n"
        "socialgate_audit_signing_key: ''\n"
        "listen_port: 3128\n"
    )
    s = load_settings(conf)
    assert s.policy == str(conf / "policy.yaml")
    assert s.audit_log == "/var/log/sg/audit.jsonl"
    assert s.admin_log == "/var/log/sg/admin-audit.jsonl"  # beside the live log: one trail
    assert s.signing_key == ""
    assert s.public_key == ""
    assert s.options["listen_port"] == 3128


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("socialgate_policy: [unclosed\n", "config.yaml:2"),
        ("- a list\n", "expected a mapping"),
        ("socialgate_policy: 3\n", "socialgate_policy: expected a path"),
    ],
)
def test_bad_config_is_one_error_with_the_file(
    tmp_path: pathlib.Path, text: str, message: str
) -> None:
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_config(tmp_path / "config.yaml")


def test_a_named_confdir_without_config_is_an_error(sg: Socialgate, tmp_path: pathlib.Path) -> None:
    r = sg("--confdir", str(tmp_path), "policy", "validate")
    assert r.code == 2
    assert "socialgate --confdir" in r.err
    assert "init" in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_cli_never_generates_keys(
    sg: Socialgate, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing key is one line, exit 2, naming `socialgate init`; nothing is written."""
    policy = write_policy(tmp_path / "pol")
    before = policy.read_bytes()
    monkeypatch.chdir(tmp_path)
    r = sg(
        "exempt", "grant", "--policy", str(policy), "--user", "carol", "--sites", "facebook.com",
        "--access", "full", "--business-case", "x", "--approved-by", "d.smith",
        "--expires", str(today()),
    )  # fmt: skip
    assert r.code == 2
    assert "socialgate init" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert policy.read_bytes() == before
    assert not (tmp_path / "keys").exists()
    assert not (tmp_path / "logs").exists()
    r = sg("audit", "verify", str(policy))
    assert r.code == 2
    assert "socialgate init" in r.err


def test_init_is_idempotent_and_every_command_reads_the_config(
    sg: Socialgate, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init twice changes nothing; admin commands from elsewhere land in the configured chain."""
    conf, logs = tmp_path / "etc", tmp_path / "log"
    conf.mkdir()
    shutil.copytree(ROOT / "policies" / "categories", conf / "categories")
    shutil.copy(ROOT / "policies" / "policy.yaml", conf / "policy.yaml")
    monkeypatch.setenv("SOCIALGATE_CONFDIR", str(conf))
    seed = tmp_path / "offline" / "verification.seed"
    seed.parent.mkdir()
    first = sg("init", "--log-dir", str(logs), "--seed", str(seed))
    assert first.code == 0, first.err
    assert "SHA256:" in first.out
    made = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert seed.stat().st_mode & 0o777 == 0o600
    assert len(list((logs / "seal").glob("*.state"))) == 2  # the proxy's and the admin chain
    assert (conf / "mitmproxy-ca-cert.pem").exists()
    assert (logs / "admin-audit.jsonl").read_bytes() == b""
    again = sg("init", "--log-dir", str(logs))
    assert again.code == 0, again.err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == made
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = sg(
        "exempt", "grant", "--user", "carol", "--sites", "facebook.com", "--access", "full",
        "--business-case", "Campaign", "--approved-by", "d.smith",
        "--expires", str(today()),
    )  # fmt: skip
    assert r.code == 0, r.err
    assert list(elsewhere.iterdir()) == []
    assert sg("policy", "validate").code == 0
    assert sg("check", "--user", "carol", "https://www.facebook.com/").code == 0
    v = sg("audit", "verify", "--seed", str(seed))
    assert v.code == 0, v.out
    assert "2 records" in v.out  # the grant and its epoch's seal
    assert "1 checkpoints" in v.out
    found = sg("audit", "search", "--format", "json")
    assert [json.loads(x)["event"]["action"] for x in found.out.splitlines()] == [
        "exemption-granted",
        "epoch-sealed",
    ]


def test_init_checks_htpasswd_is_bcrypt(sg: Socialgate, tmp_path: pathlib.Path) -> None:
    """mitmproxy reads only bcrypt htpasswd entries: an $apr1$ line is named."""
    ht = tmp_path / "htpasswd"
    ht.write_text("alice:$2y$05$" + "a" * 53 + "\nbob:$apr1$x$abcdefgh\n")
    r = sg("--confdir", str(tmp_path / "etc"), "init", "--htpasswd", str(ht))
    assert r.code == 2
    assert f"{ht}:2: user bob: MD5 ($apr1$)" in r.err
    assert "htpasswd -B" in r.err
    assert not (tmp_path / "etc").exists()


def run_cli(*args: str, cwd: pathlib.Path, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [str(BIN / "socialgate"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_failed_set_creates_nothing_and_names_the_option(tmp_path: pathlib.Path) -> None:
    """A refused --set: one line naming it, exit 2, no log, no key, no default file opened."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "logs").mkdir()
    (work / "logs" / "audit.jsonl").write_text("")  # an unrelated trail in the working dir
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALGATE_")}
    res = run_cli(
        "run", "--policy", str(tmp_path / "policies" / "policy.yaml"),
        "--audit-log", str(tmp_path / "var" / "audit.jsonl"), "--listen-port", "0", "--",
        "--set", f"confdir={tmp_path / 'ca'}", "--set", "socialgate_audit_fsync=sometimes",
        cwd=work, env=env,
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "socialgate: socialgate_audit_fsync=sometimes: must be one of always, interval, never"
    ]
    assert files_under(work) == {"logs/audit.jsonl"}
    assert (work / "logs" / "audit.jsonl").read_text() == ""
    assert not (tmp_path / "var").exists()


def test_make_run_honours_port() -> None:
    """`make run PORT=3128` listens there (README's `make run` itself is unchanged)."""
    res = subprocess.run(
        ["make", "-n", "run", "PORT=3128", "HOST=0.0.0.0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "--listen-host 0.0.0.0 --listen-port 3128" in res.stdout
