"""`audit verify` over shipped checkpoints: syslog files prove what the host can no longer fake."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import subprocess
import sys
from collections.abc import Callable, Sequence

import pytest

from proxy_addons.audit.chain import canonical
from proxy_addons.audit.checkpoints import sign
from proxy_addons.audit.keys import load_or_create_signing_key
from proxy_addons.audit.ship import message_text, rfc5424
from tests.support.attacker import drop_last, edit_user, resign_checkpoints, rewrite_log
from tests.support.audit_env import Env

OTHER_LINE = "Nov 25 10:00:01 proxy1 CRON[4242]: (root) CMD (run-parts /etc/cron.hourly)"


def traditional(body: dict[str, object]) -> str:
    return f"Nov 25 10:00:00 proxy1 socialgate[812]: {message_text(body)}"


def syslog_5424(body: dict[str, object]) -> str:
    return rfc5424(body, hostname="proxy1", procid=812).decode()


def journal_json(body: dict[str, object]) -> str:
    return json.dumps({"__CURSOR": "s=1", "SYSLOG_IDENTIFIER": "socialgate",
                       "MESSAGE": message_text(body), "_HOSTNAME": "proxy1"})  # fmt: skip


FORMATS: dict[str, Callable[[dict[str, object]], str]] = {
    "rsyslog-traditional": traditional,
    "rfc5424": syslog_5424,
    "journalctl-json": journal_json,
}


@pytest.fixture
def env(tmp_path: pathlib.Path) -> Env:
    e = Env(tmp_path)
    e.write(10, checkpoint_records=2)
    return e


def local_bodies(env: Env) -> list[dict[str, object]]:
    return [json.loads(line) for line in env.checkpoints.read_text().splitlines()]


def ship(
    env: Env,
    fmt: Callable[[dict[str, object]], str] = traditional,
    bodies: list[dict[str, object]] | None = None,
) -> pathlib.Path:
    """A collector's file holding the checkpoints made so far, between other messages."""
    lines = [OTHER_LINE]
    for body in local_bodies(env) if bodies is None else bodies:
        lines += [fmt(body), OTHER_LINE]
    path = env.root / "vault" / "proxy1.log"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def messages(items: Sequence[object]) -> str:
    return "\n".join(str(i) for i in items)


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
def test_shipped_copy_verifies_intact(env: Env, fmt: Callable[[dict[str, object]], str]) -> None:
    """Each collector format is read; other messages are notes, never damage."""
    shipped = ship(env, fmt)
    report = env.verify(checkpoints_path=shipped)
    assert report.ok, report.problems
    assert report.checkpoints == len(local_bodies(env))
    assert f"{shipped}:1: skipped:" in messages(report.notes)


def test_lost_and_repeated_messages_are_notes(env: Env) -> None:
    """A checkpoint lost in transit or received twice is a note; the rest still proves."""
    bodies = local_bodies(env)
    report = env.verify(checkpoints_path=ship(env, bodies=[bodies[0], *bodies[2:], bodies[-1]]))
    assert report.ok, report.problems
    assert "checkpoints 2 of 'w1' are in no file given" in messages(report.notes)


def test_rewrite_after_shipping_caught(env: Env) -> None:
    """Log re-sealed and checkpoint file re-signed with the stolen keys: the shipped copy
    still names the first record whose hash changed."""
    shipped = ship(env)
    rewrite_log(env.log, env.key, edit_user("mallory", 3))
    resign_checkpoints(env.checkpoints, env.signing, env.log)
    assert env.verify().ok  # the host's own evidence is consistent again
    report = env.verify(checkpoints_path=shipped)
    assert not report.ok
    first = report.problems[0]
    assert first.file == str(env.log)
    assert f"does not match signed checkpoint {shipped}:" in first.message


def test_truncation_after_shipping_caught(env: Env) -> None:
    """Tail cut and checkpoint file cut to match: the shipped copy proves the longer chain."""
    shipped = ship(env)
    rewrite_log(env.log, env.key, drop_last(3))
    resign_checkpoints(env.checkpoints, env.signing, env.log)
    assert env.verify().ok
    report = env.verify(checkpoints_path=shipped)
    assert not report.ok
    assert "tail truncated" in report.problems[0].message


def test_checkpoint_file_and_shipped_copy_disagree(env: Env) -> None:
    """Given both, a checkpoint rewritten on the host disagrees with its shipped twin."""
    shipped = ship(env)
    rewrite_log(env.log, env.key, edit_user("mallory", 3))
    resign_checkpoints(env.checkpoints, env.signing, env.log)
    report = env.verify(checkpoints_path=[env.checkpoints, shipped])
    assert "one of them was rewritten" in messages(report.problems)


def test_injected_checkpoint_with_another_key_is_damage(env: Env) -> None:
    """Anyone can send syslog: a checkpoint not signed by the trusted key is a problem."""
    forger = load_or_create_signing_key(env.root / "forger" / "k.key")
    last = local_bodies(env)[-1]
    fake = sign(
        forger, worker="w1", n=int(str(last["n"])) + 1, seq=999, hash_="00" * 32,
        log_name="audit.jsonl", now=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    shipped = ship(env, bodies=[*local_bodies(env), fake])
    report = env.verify(checkpoints_path=shipped)
    lines = shipped.read_text().splitlines()
    assert [(p.file, p.line, p.message) for p in report.problems] == [
        (str(shipped), len(lines) - 1, "checkpoint signature is not valid")
    ]


def test_damaged_shipped_checkpoint_is_damage(env: Env) -> None:
    """A syslog line holding an altered checkpoint is a problem, not a skipped line."""
    bodies = local_bodies(env)
    bodies[1] = {**bodies[1], "seq": int(str(bodies[1]["seq"])) + 1}
    report = env.verify(checkpoints_path=ship(env, bodies=bodies))
    assert "checkpoint signature is not valid" in messages(report.problems)


def test_bare_copy_keeps_the_strict_rules(env: Env) -> None:
    """A plain copy of the checkpoint file (journalctl -o cat) must still be complete."""
    bodies = local_bodies(env)
    copy = env.root / "copy.checkpoints"
    copy.write_text("".join(canonical(b) + "\n" for b in [bodies[0], *bodies[2:]]))
    report = env.verify(checkpoints_path=copy)
    assert "missing before it" in messages(report.problems)


def run_verify(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "socialgate"), "audit", "verify", *args],
        cwd=env.root, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_cli_verify_against_shipped_copy(env: Env) -> None:
    """`audit verify --checkpoints <syslog file>`: 0 and notes when intact, 1 after a rewrite."""
    shipped = ship(env)
    ok = run_verify(env, "--checkpoints", str(shipped), "logs/audit.jsonl")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"note: {shipped}:1: skipped:" in ok.stdout
    assert ok.stdout.splitlines()[-1].startswith("intact: ")
    rewrite_log(env.log, env.key, edit_user("mallory", 3))
    resign_checkpoints(env.checkpoints, env.signing, env.log)
    assert run_verify(env, "logs/audit.jsonl").returncode == 0
    bad = run_verify(env, "--checkpoints", str(shipped), "logs/audit.jsonl")
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[0].startswith("logs/audit.jsonl:")
    assert "DAMAGED" in bad.stdout
