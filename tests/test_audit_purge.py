"""`socialgate audit purge`: old rotated files go, a signed anchor stays, the rest verifies."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import socket
import time

import pytest

from proxy_addons.audit import epochs
from proxy_addons.audit.files import series
from tests.support.audit_env import SealedEnv
from tests.support.cli import Socialgate, make_runner


@pytest.fixture
def sg(capsys: pytest.CaptureFixture[str]) -> Socialgate:
    return make_runner(capsys)


@pytest.fixture
def trail(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> tuple[SealedEnv, str]:
    """An installation whose chain w1 has 3 rotated files, the first older than the cut-off."""
    env = SealedEnv(tmp_path, epoch_seconds=60)
    host = socket.gethostname()
    epochs.enrol(env.seal_dir, env.seed, f"{host}:admin-audit.jsonl", "2026-01-01T00:00:00Z")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "config.yaml").write_text(
        f"socialgate_audit_log: {env.log}\n"
        f"socialgate_admin_log: {env.log.with_name('admin-audit.jsonl')}\n"
        f"socialgate_audit_key: {env.key_path}\n"
        f"socialgate_audit_signing_key: {env.signing_path}\n"
        f"socialgate_audit_seal_dir: {env.seal_dir}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SOCIALGATE_CONFDIR", str(etc))
    with env.writing(rotate_bytes=1) as w:
        env.submit(w, 1)
        time.sleep(0.01)
        cut = dt.datetime.now(dt.UTC).isoformat()
        time.sleep(0.01)
        env.submit(w, 2)
        env.submit(w, 3)
    return env, cut


def verify(sg: Socialgate, env: SealedEnv) -> tuple[int, str]:
    r = sg("audit", "verify", "--seed", str(env.seed_path))
    return r.code, r.out


def test_purge_then_verify_is_intact_with_a_note(
    sg: Socialgate, trail: tuple[SealedEnv, str]
) -> None:
    """Files older than the cut-off are gone; verify proves the rest from the purge record."""
    env, cut = trail
    before = series(env.log)
    r = sg("audit", "purge", "--before", cut, "--by", "d.smith")
    assert r.code == 0, r.err
    assert "purged 1 file;" in r.out
    assert series(env.log) == before[1:]
    code, out = verify(sg, env)
    assert code == 0, out
    assert "were purged (retention)" in out
    admin = env.log.with_name("admin-audit.jsonl").read_text().splitlines()
    purge = json.loads(admin[0])
    assert purge["event"]["action"] == "purge"
    assert purge["user"]["name"] == "d.smith"
    assert [f["name"] for f in purge["socialgate"]["purge"]["files"]] == [before[0].name]
    assert purge["socialgate"]["purge"]["chains"]["w1"]["seq"] == 2  # the anchor


def test_dry_run_deletes_nothing(sg: Socialgate, trail: tuple[SealedEnv, str]) -> None:
    """--dry-run names the files and writes no record."""
    env, cut = trail
    before = series(env.log)
    r = sg("audit", "purge", "--before", cut, "--dry-run")
    assert r.code == 0, r.err
    assert r.out.count("would delete") == 1
    assert series(env.log) == before
    assert not env.log.with_name("admin-audit.jsonl").exists()


def test_live_file_is_never_purged(sg: Socialgate, trail: tuple[SealedEnv, str]) -> None:
    """Even with every record older than the cut-off, the live file stays."""
    env, _ = trail
    r = sg("audit", "purge", "--before", "0d")
    assert r.code == 0, r.err
    assert series(env.log) == [env.log]
    assert verify(sg, env)[0] == 0


def test_a_gap_in_the_series_is_refused(sg: Socialgate, trail: tuple[SealedEnv, str]) -> None:
    """A trail that is already damaged is evidence: purge refuses it and changes nothing."""
    env, _ = trail
    files = series(env.log)
    files[1].unlink()
    r = sg("audit", "purge", "--before", "0d")
    assert r.code == 2
    assert "not purged" in r.err
    assert series(env.log) == [files[0], *files[2:]]


def test_second_purge_keeps_earlier_anchors(sg: Socialgate, trail: tuple[SealedEnv, str]) -> None:
    """Anchors are cumulative: after two purges the newest purge record alone suffices."""
    env, cut = trail
    assert sg("audit", "purge", "--before", cut).code == 0
    assert sg("audit", "purge", "--before", "0d").code == 0
    code, out = verify(sg, env)
    assert code == 0, out


def test_future_date_is_refused(sg: Socialgate, trail: tuple[SealedEnv, str]) -> None:
    """A cut-off in the future is a mistake: one line, exit 2."""
    r = sg("audit", "purge", "--before", "2999-01-01")
    assert r.code == 2
    assert "--before 2999-01-01: in the future" in r.err


def test_timer_unit_runs_a_valid_purge(sg: Socialgate, trail: tuple[SealedEnv, str]) -> None:
    """The command deploy/socialgate-purge.service runs is accepted (here as a dry run)."""
    unit = pathlib.Path(__file__).parent.parent / "deploy" / "socialgate-purge.service"
    line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
    argv = line.split()[1:]
    confdir = argv.index("--confdir")
    del argv[confdir : confdir + 2]  # the test's configuration: $SOCIALGATE_CONFDIR
    r = sg(*argv, "--dry-run")
    assert r.code == 0, r.err
