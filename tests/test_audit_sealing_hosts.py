"""Several hosts sealed from one verification seed: one seed proves every host's chains."""

from __future__ import annotations

import pathlib

import pytest

from proxy_addons.audit import epochs
from proxy_addons.audit.verify import verify_logs
from tests.support.audit_env import SealedEnv

START = "2026-01-01T00:00:00.000000Z"


def host(root: pathlib.Path, worker: str, seed: bytes | None) -> SealedEnv:
    """A host whose worker chain is enrolled from ``seed`` (the first host's, if given)."""
    env = SealedEnv(root)
    if seed is not None:
        env.seed = seed
        env.seed_path.write_text(epochs.seed_text(seed), encoding="ascii")
    env.worker = worker
    epochs.enrol(env.seal_dir, env.seed, worker, START)
    return env


@pytest.fixture
def two_hosts(tmp_path: pathlib.Path) -> tuple[SealedEnv, SealedEnv]:
    first = host(tmp_path / "proxy1", "proxy1-01", None)
    second = host(tmp_path / "proxy2", "proxy2-01", first.seed)
    for env in (first, second):
        with env.writing() as w:
            for i in range(3):
                env.submit(w, i + 1)
    return first, second


def test_one_seed_verifies_every_hosts_chain(two_hosts: tuple[SealedEnv, SealedEnv]) -> None:
    """Both hosts' logs together, the first host's seed: intact, both chains, all epochs."""
    first, second = two_hosts
    report = verify_logs(
        [first.log, second.log], key_path=None, seed_path=first.seed_path, checkpoints_path=None
    )
    assert report.ok, report.problems
    assert report.workers == {"proxy1-01": (1, 6), "proxy2-01": (1, 6)}  # start, 3, seal, stop
    assert all(report.epochs[w] for w in report.workers)


def test_a_host_enrolled_from_another_seed_is_not_proven(
    tmp_path: pathlib.Path, two_hosts: tuple[SealedEnv, SealedEnv]
) -> None:
    """A third host sealed from its own seed: its records fail under the shared seed."""
    first, _ = two_hosts
    stray = host(tmp_path / "proxy3", "proxy3-01", None)
    with stray.writing() as w:
        stray.submit(w, 1)
    report = verify_logs(
        [first.log, stray.log], key_path=None, seed_path=first.seed_path, checkpoints_path=None
    )
    assert not report.ok
    assert any("proxy3" in p.file or "proxy3-01" in p.message for p in report.problems)
