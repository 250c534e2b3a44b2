"""Tamper matrix and verify semantics: every alteration is found at the right line."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest

from proxy_addons.audit.chain import canonical
from proxy_addons.audit.verify import verify_logs
from tests.support.audit_env import Env


@pytest.fixture
def env(tmp_path: pathlib.Path) -> Env:
    return Env(tmp_path)


def lines(path: pathlib.Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def put(path: pathlib.Path, content: list[str]) -> None:
    path.write_text("".join(content), encoding="utf-8")


# --- an intact trail ---------------------------------------------------------


def test_intact_log_verifies(env: Env) -> None:
    """Start, 10 records, stop: every record counted, no problem."""
    env.write(10, checkpoint_records=4)
    report = env.verify()
    assert report.ok, report.problems
    actions = [json.loads(line)["event"]["action"] for line in lines(env.log)]
    assert report.records == 12 + actions.count("checkpoint")
    assert report.checkpoints == actions.count("checkpoint") + 1  # and one at stop


# --- the tamper matrix (10 records: lines 1..12) ------------------------------


def edit_field(ls: list[str]) -> list[str]:
    obj = json.loads(ls[4])
    obj["user"]["name"] = "mallory"
    return [*ls[:4], canonical(obj) + "\n", *ls[5:]]


def reformat_line(ls: list[str]) -> list[str]:
    return [*ls[:4], json.dumps(json.loads(ls[4]), indent=None) + "\n", *ls[5:]]


def forge_line(ls: list[str]) -> list[str]:
    obj = json.loads(ls[4])
    obj["message"] = "forged"
    obj["socialgate"]["chain"]["seq"] = 5
    obj["socialgate"]["chain"]["prev"] = json.loads(ls[3])["socialgate"]["chain"]["hash"]
    return [*ls[:4], canonical(obj) + "\n", *ls[4:]]


def duplicate_key(ls: list[str]) -> list[str]:
    return [*ls[:4], ls[4].replace('{"@timestamp"', '{"message":"x","@timestamp"', 1), *ls[5:]]


@pytest.mark.parametrize(
    ("tamper", "line", "words"),
    [
        (edit_field, 5, "altered or forged"),
        (reformat_line, 5, "canonical"),
        (duplicate_key, 5, "duplicate key"),
        (lambda ls: [*ls[:4], *ls[5:]], 5, "record 5 missing"),
        (lambda ls: [*ls[:4], ls[5], ls[4], *ls[6:]], 5, "missing"),
        (forge_line, 5, "altered or forged"),
        (lambda ls: [*ls[:7], "garbage\n", *ls[7:]], 8, "not a valid audit record"),
        (lambda ls: ls[1:], 1, "starts at seq 2"),
    ],
    ids=["edit-field", "reformat", "duplicate-key", "delete-line", "swap-lines", "insert-forged",
         "insert-garbage", "delete-first"],
)  # fmt: skip
def test_tamper_detected_at_line(
    env: Env, tamper: Callable[[list[str]], list[str]], line: int, words: str
) -> None:
    """Each alteration is a problem at the first altered line, saying what is wrong."""
    env.write(10)
    put(env.log, tamper(lines(env.log)))
    report = env.verify()
    assert not report.ok
    first = report.problems[0]
    assert (first.file, first.line) == (str(env.log), line)
    assert words in first.message


def test_one_deletion_is_one_problem(env: Env) -> None:
    """After a problem the check re-synchronises: a deleted line is not a cascade."""
    env.write(10)
    put(env.log, [*lines(env.log)[:4], *lines(env.log)[5:]])
    assert len(env.verify().problems) == 1


def test_truncated_tail_detected_by_checkpoint(env: Env) -> None:
    """Removing the last records is found against the signed checkpoints."""
    env.write(10, checkpoint_records=3)
    kept = lines(env.log)[:-4]
    put(env.log, kept)
    report = env.verify()
    assert not report.ok
    assert "tail truncated" in report.problems[0].message
    assert report.problems[0].line == len(kept)


def test_truncated_tail_undetectable_without_checkpoints(env: Env) -> None:
    """Without checkpoints a cut tail still verifies: that is why they are shipped."""
    env.write(10, checkpoint_records=3)
    put(env.log, lines(env.log)[:-4])
    assert env.verify(checkpoints_path=None).ok


def test_wrong_key_detected_at_first_line(env: Env, tmp_path: pathlib.Path) -> None:
    """Verifying with another key (or a log re-sealed under a new key) fails at line 1."""
    env.write(3)
    other = tmp_path / "other.key"
    other.write_text("11" * 32 + "\n")
    report = verify_logs(env.files(), key_path=other)
    assert not report.ok
    assert (report.problems[0].line, "wrong --key" in report.problems[0].message) == (1, True)


def test_resealed_with_replaced_key_detected(env: Env) -> None:
    """An attacker who replaces the key file and re-seals the log is caught by the escrowed key."""
    env.write(3)
    escrow = env.key
    env.key_path.unlink()
    forged = Env(env.root / "forger")
    forged.write(3)
    shutil.copy(forged.log, env.log)
    env.key_path.write_text(escrow.hex())
    report = env.verify(checkpoints_path=None)
    assert not report.ok
    assert report.problems[0].line == 1


def test_deleted_rotated_file_detected(env: Env) -> None:
    """Removing a middle file of a rotated series is a gap at the start of the next file."""
    env.write(30, rotate_bytes=2000)
    files = env.files()
    assert len(files) >= 4
    files[1].unlink()
    report = env.verify(files=env.files())
    assert not report.ok
    assert report.problems[0].file == str(files[2])
    assert report.problems[0].line == 1
    assert "missing" in report.problems[0].message


def test_deleted_newest_file_detected_by_checkpoint(env: Env) -> None:
    """Removing the live file (newest) is a truncated tail against the checkpoints."""
    env.write(30, rotate_bytes=2000, checkpoint_records=5)
    env.log.unlink()
    report = env.verify(files=env.files())
    assert not report.ok
    assert "tail truncated or newest file missing" in report.problems[0].message


# --- checkpoints --------------------------------------------------------------


def test_checkpoints_out_of_order_detected(env: Env) -> None:
    """Two checkpoints swapped: the later-signed one appearing first is named."""
    env.write(10, checkpoint_records=2)
    cps = lines(env.checkpoints)
    assert len(cps) >= 3
    put(env.checkpoints, [cps[0], cps[2], cps[1], *cps[3:]])
    report = env.verify()
    assert not report.ok
    problem = report.problems[0]
    assert (problem.file, problem.line) == (str(env.checkpoints), 2)


def test_forged_checkpoint_signature_detected(env: Env) -> None:
    """A checkpoint edited to claim a shorter chain no longer verifies."""
    env.write(10, checkpoint_records=4)
    cps = lines(env.checkpoints)
    body = json.loads(cps[-1])
    body["seq"] -= 1
    put(env.checkpoints, [*cps[:-1], canonical(body) + "\n"])
    report = env.verify()
    assert not report.ok
    assert report.problems[0].line == len(cps)
    assert "signature" in report.problems[0].message


def test_checkpoint_under_other_key_rejected(env: Env, tmp_path: pathlib.Path) -> None:
    """Against the trusted public key, checkpoints signed by a new key are rejected."""
    env.write(4, checkpoint_records=2)
    other = Env(tmp_path / "other")
    report = env.verify(public_key_path=other.pub_path)
    assert not report.ok
    assert "signature" in report.problems[0].message


# --- several workers ----------------------------------------------------------


def test_two_workers_verified_together(env: Env) -> None:
    """Two proxy processes' logs (one chain each) verify in one call; damage names the file."""
    env.write(5, checkpoint_records=2)
    second = env.root / "logs" / "audit-2.jsonl"
    env.write(
        5, path=second, worker="proxy1:2",
        checkpoints_path=env.root / "logs" / "audit-2.checkpoints", checkpoint_records=2,
    )  # fmt: skip
    files = [*env.files(), second]
    cps = [env.checkpoints, env.root / "logs" / "audit-2.checkpoints"]
    report = env.verify(files=files, checkpoints_path=cps)
    assert report.ok, report.problems
    assert set(report.workers) == {"w1", "proxy1:2"}
    put(second, lines(second)[:3] + lines(second)[4:])
    report = env.verify(files=files, checkpoints_path=cps)
    assert [(p.file, p.line) for p in report.problems] == [(str(second), 4)]


# --- the command --------------------------------------------------------------


def run_cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "socialgate"), "audit", "verify", *args],
        cwd=env.root, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_cli_exit_codes(env: Env) -> None:
    """0 intact; 1 damaged with file:line first; 2 for a missing key or log."""
    env.write(5, checkpoint_records=2)
    ok = run_cli(env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines()[-1].startswith(f"intact: {len(lines(env.log))} records")
    put(env.log, [*lines(env.log)[:2], *lines(env.log)[3:]])
    bad = run_cli(env, "logs/audit.jsonl")
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[0].startswith("logs/audit.jsonl:3: ")
    assert "DAMAGED: first problem at logs/audit.jsonl:3" in bad.stdout
    assert run_cli(env, "--key", "nope.key").returncode == 2
    missing = run_cli(env, "logs/nothing.jsonl")
    assert missing.returncode == 2
    assert "nothing.jsonl does not exist" in missing.stderr


def test_cli_empty_log_proves_nothing(env: Env) -> None:
    """A file with no records is not proof of anything: said, exit 1 (not 'intact: 0 records')."""
    env.write(1)
    (env.root / "logs/empty.jsonl").write_bytes(b"")
    res = run_cli(env, "logs/empty.jsonl")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "intact" not in res.stdout
    assert res.stdout.splitlines()[-1].startswith(
        "NO RECORDS: logs/empty.jsonl holds no audit record"
    )
