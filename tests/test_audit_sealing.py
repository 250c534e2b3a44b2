"""Forward-secure sealing: what an attacker holding the host's key now (or an old one) cannot do."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import time
from collections.abc import Callable

import pytest

from proxy_addons.audit.chain import GENESIS, canonical, record_hmac
from proxy_addons.audit.epochs import KeySchedule
from proxy_addons.audit.writer import ChainWriter, WriterConfig
from proxy_addons.errors import AuditUnavailable
from tests.support.audit_env import SealedEnv, rec_now

Lines = list[str]


def lines(path: pathlib.Path) -> Lines:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def chain(line: str) -> dict[str, object]:
    c = json.loads(line)["socialgate"]["chain"]
    assert isinstance(c, dict)
    return c


def action(line: str) -> str:
    return str(json.loads(line)["event"]["action"])


def sealed_log(env: SealedEnv) -> None:
    """Epoch 0: 2 records; epoch 1: 1 record; epochs 2, 3: idle; then 1 record, stop."""
    with env.writing() as w:
        env.submit(w, 1)
        env.submit(w, 2)
        time.sleep(env.epoch_seconds * 1.5)
        env.submit(w, 3)
        time.sleep(env.epoch_seconds * 3.2)
        env.submit(w, 4)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> SealedEnv:
    env = SealedEnv(tmp_path_factory.mktemp("sealed"))
    sealed_log(env)
    return env


@pytest.fixture
def env(made: SealedEnv, tmp_path: pathlib.Path) -> SealedEnv:
    """A fresh copy of the module's sealed trail, to tamper with."""
    copy = SealedEnv.__new__(SealedEnv)
    copy.__dict__.update(made.__dict__)
    copy.log = tmp_path / "audit.jsonl"
    copy.log.write_bytes(made.log.read_bytes())
    copy.checkpoints = tmp_path / "none.checkpoints"
    return copy


def reseal(ls: Lines, start: int, key: bytes, epoch: int, *, drop: tuple[int, ...] = ()) -> Lines:
    """The attacker's rewrite: lines from ``start`` on re-chained and sealed under ``key``."""
    out = ls[:start]
    seq, prev = (chain(out[-1])["seq"], chain(out[-1])["hash"]) if out else (0, GENESIS)
    for i, line in enumerate(ls[start:], start):
        if i in drop:
            continue
        obj = json.loads(line)
        c = obj["socialgate"]["chain"]
        c.pop("hash")
        c.update(seq=int(str(seq)) + 1, prev=prev, epoch=epoch)
        c["hash"] = record_hmac(key, obj)
        seq, prev = c["seq"], c["hash"]
        out.append(canonical(obj) + "\n")
    return out


def edit(line: str, key: bytes, epoch: int | None = None) -> str:
    """The record with another user, re-sealed under ``key`` (and relabelled to ``epoch``)."""
    obj = json.loads(line)
    obj["user"]["name"] = "mallory"
    c = obj["socialgate"]["chain"]
    c.pop("hash")
    if epoch is not None:
        c["epoch"] = epoch
    c["hash"] = record_hmac(key, obj)
    return canonical(obj) + "\n"


def idle_seals(ls: Lines) -> tuple[int, ...]:
    """Indexes of the seals of epochs in which nothing was written."""
    return tuple(
        i
        for i, line in enumerate(ls)
        if action(line) == "epoch-sealed"
        and json.loads(line)["socialgate"]["epoch"]["records"] == 0
    )


def test_sealed_trail_verifies_with_every_epoch_sealed(made: SealedEnv) -> None:
    """Idle epochs are sealed too: every epoch of the trail has its seal."""
    report = made.verify(checkpoints_path=None)
    assert report.ok, report.problems
    epochs = report.epochs["w1"]
    assert [e.n for e in epochs] == list(range(len(epochs)))
    assert all(e.sealed for e in epochs)
    assert sum(1 for e in epochs if e.records == 0) >= 2
    assert epochs[-1].sealed == "shutdown"


def test_old_key_is_gone_from_the_state_file(made: SealedEnv) -> None:
    """The state holds the current epoch's key only; no earlier key is in the file."""
    state = made.state()
    schedule = KeySchedule(made.seed, "w1")
    data = made.state_file.read_bytes()
    assert bytes(state.key) == schedule.key(state.epoch)
    assert all(schedule.key(n).hex().encode() not in data for n in range(state.epoch))
    assert not made.state_file.with_name(made.state_file.name + ".next").exists()


def _current(env: SealedEnv) -> tuple[bytes, int]:
    state = env.state()
    return bytes(state.key), state.epoch


def edit_in_place(env: SealedEnv, ls: Lines) -> Lines:
    key, _ = _current(env)
    return [ls[0], edit(ls[1], key), *ls[2:]]


def relabel_history(env: SealedEnv, ls: Lines) -> Lines:
    key, epoch = _current(env)
    return reseal([ls[0], edit(ls[1], key), *ls[2:]], 1, key, epoch)


def drop_idle_epochs(env: SealedEnv, ls: Lines) -> Lines:
    key, epoch = _current(env)
    first = idle_seals(ls)[0]
    return reseal(ls, first, key, epoch, drop=idle_seals(ls))


def delete_idle_epochs(env: SealedEnv, ls: Lines) -> Lines:
    return [line for i, line in enumerate(ls) if i not in idle_seals(ls)]


def replay_after_end(env: SealedEnv, ls: Lines) -> Lines:
    old = KeySchedule(env.seed, "w1").key(1)  # stolen while epoch 1 was current
    forged = json.loads(ls[-1])
    forged["event"]["action"] = "reminder-acknowledged"
    forged["socialgate"].pop("epoch", None)
    c = forged["socialgate"]["chain"]
    c.update(seq=c["seq"] + 1, prev=c["hash"], epoch=1)
    c.pop("hash")
    c["hash"] = record_hmac(old, forged)
    return [*ls, canonical(forged) + "\n"]


def replay_into_closed_epoch(env: SealedEnv, ls: Lines) -> Lines:
    old = KeySchedule(env.seed, "w1").key(1)
    seal1 = next(
        i for i, line in enumerate(ls)
        if action(line) == "epoch-sealed" and chain(line)["epoch"] == 1
    )  # fmt: skip
    return reseal([*ls[: seal1 + 1], ls[1], *ls[seal1 + 1 :]], seal1 + 1, old, 1)


def old_key_current_label(env: SealedEnv, ls: Lines) -> Lines:
    _, epoch = _current(env)
    old = KeySchedule(env.seed, "w1").key(1)
    last = max(i for i, line in enumerate(ls) if action(line) == "reminder-acknowledged")
    return [*ls[:last], edit(ls[last], old, epoch), *ls[last + 1 :]]


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        (edit_in_place, "altered or forged"),
        (relabel_history, "missing"),
        (drop_idle_epochs, "missing"),
        (delete_idle_epochs, "missing"),
        (replay_after_end, "backwards"),
        (replay_into_closed_epoch, "after that epoch was sealed"),
        (old_key_current_label, "altered or forged"),
    ],
    ids=[
        "current-key-rewrites-earlier-record", "current-key-relabels-history",
        "idle-epochs-removed-and-resealed", "idle-epochs-deleted", "old-key-replayed-at-end",
        "old-key-replayed-into-its-epoch", "old-key-under-current-label",
    ],
)  # fmt: skip
def test_attack_on_sealed_epochs_is_caught(
    env: SealedEnv, tamper: Callable[[SealedEnv, Lines], Lines], words: str
) -> None:
    """Without checkpoints, the epochs alone expose each rewrite an attacker can make."""
    env.log.write_text("".join(tamper(env, lines(env.log))), encoding="utf-8")
    report = env.verify(checkpoints_path=None)
    assert not report.ok
    assert any(words in p.message for p in report.problems), report.problems


def test_crash_then_restart_seals_the_epoch_late(tmp_path: pathlib.Path) -> None:
    """A crash leaves its epoch unsealed; the restart seals it late and says so."""
    env = SealedEnv(tmp_path)
    w = env.writer()
    env.submit(w, 1)
    w.close(None)  # no audit-stopped, no seal: as a crash leaves it
    time.sleep(env.epoch_seconds * 1.5)
    with env.writing():
        pass
    ls = [json.loads(line) for line in lines(env.log)]
    seals = [i for i, r in enumerate(ls) if r["event"]["action"] == "epoch-sealed"]
    late, after = ls[seals[0]]["socialgate"], ls[seals[0] + 1]["socialgate"]
    assert (late["epoch"]["reason"], late["epoch"]["records"]) == ("restart", 2)
    assert after["previous_shutdown"] == "unclean"
    assert after["chain"]["epoch"] == late["chain"]["epoch"] + 1
    report = env.verify(checkpoints_path=None)
    assert report.ok, report.problems
    assert any("sealed late" in n.message for n in report.notes)


def test_restart_within_the_epoch_continues_it(tmp_path: pathlib.Path) -> None:
    """A crash and restart inside one epoch: no late seal, the epoch simply goes on."""
    env = SealedEnv(tmp_path, epoch_seconds=60)
    w = env.writer()
    env.submit(w, 1)
    w.close(None)
    with env.writing() as w2:
        env.submit(w2, 2)
    report = env.verify(checkpoints_path=None)
    assert report.ok, report.problems
    assert [(e.n, e.records, e.sealed) for e in report.epochs["w1"]] == [(0, 5, "shutdown")]


def test_downgrade_to_static_key_is_caught(tmp_path: pathlib.Path) -> None:
    """A format 1 record (static key, which may still be on the host) after sealed ones."""
    env = SealedEnv(tmp_path, epoch_seconds=60)
    env.write(1)
    ls = lines(env.log)
    forged = json.loads(ls[-1])
    c = forged["socialgate"]["chain"]
    c.update(seq=c["seq"] + 1, prev=c["hash"])
    del c["epoch"], c["hash"]
    c["hash"] = record_hmac(env.key, forged)
    env.log.write_text("".join([*ls, canonical(forged) + "\n"]), encoding="utf-8")
    report = env.verify(checkpoints_path=None, key_path=env.key_path)
    assert any("format 1 record" in p.message for p in report.problems), report.problems


def test_format1_log_continues_as_sealed_and_verifies_with_both(tmp_path: pathlib.Path) -> None:
    """Turning sealing on under an old log: the old part needs --key, the rest --seed."""
    env = SealedEnv(tmp_path, epoch_seconds=60)
    old = ChainWriter(WriterConfig(path=env.log, worker="w1"), env.key)  # one static key
    old.open(rec_now(0))
    old.close(rec_now(-1))
    env.write(1)
    report = env.verify(checkpoints_path=None, key_path=env.key_path)
    assert report.ok, report.problems
    assert report.format1["w1"] == 2
    assert report.epochs["w1"][0].records == 3


def test_sealed_log_without_seed_is_refused(made: SealedEnv) -> None:
    """Forward-sealed records need the verification seed: a clear error, not damage."""
    from proxy_addons.errors import AuditError

    with pytest.raises(AuditError, match="--seed"):
        made.verify(seed_path=None, key_path=made.key_path)


def test_failed_fsync_then_recovery_keeps_epochs_consistent(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records abandoned by a failed fsync are superseded: the epoch's seal does not count them."""
    env = SealedEnv(tmp_path, epoch_seconds=0.5)
    with env.writing(retry_seconds=0.05) as w:
        env.submit(w, 1)
        real = os.fsync

        def failing(fd: int) -> None:
            if fd == w._fd:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            real(fd)

        monkeypatch.setattr(os, "fsync", failing)
        with pytest.raises(AuditUnavailable, match="fsync-error"):
            env.submit(w, 2)
        monkeypatch.undo()
        time.sleep(0.1)
        env.submit(w, 3)
        time.sleep(0.6)
    report = env.verify(checkpoints_path=None)
    assert report.ok, report.problems
    assert any("superseded" in n.message for n in report.notes)
    assert all(e.sealed for e in report.epochs["w1"])
