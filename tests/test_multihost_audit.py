"""Several hosts' logs together: verify, search and stats read them as one trail; workers
that ran different policies at the same time are flagged (policy drift)."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from proxy_addons.audit.chain import GENESIS, canonical, seal
from tests.support.audit_scenario import KEY, Ev, record, write_key
from tests.support.cli import socialgate, socialgate_json

GOOD = "a" * 64
OTHER = "b" * 64

# host -> worker -> events (UTC). Every worker loads GOOD at 08:00; unless told otherwise.
Plan = dict[str, dict[str, list[tuple[Ev, str | None]]]]


def loaded(at: str, worker: str, sha: str) -> tuple[Ev, str | None]:
    return Ev(at, worker, None, action="policy-loaded"), sha


def access(at: str, worker: str, user: str) -> tuple[Ev, str | None]:
    return Ev(at, worker, user, "www.facebook.com", "blocked", "no-exemption"), None


def stopped(at: str, worker: str) -> tuple[Ev, str | None]:
    return Ev(at, worker, None, action="audit-stopped"), None


def plan(drift_from: str | None = None, drift_to: str | None = None) -> Plan:
    """Two hosts, three workers; proxy2-1 runs OTHER from ``drift_from`` to ``drift_to``."""
    p: Plan = {
        "proxy1": {
            "proxy1-1": [loaded("2026-03-27T08:00:00", "proxy1-1", GOOD)],
            "proxy1-2": [loaded("2026-03-27T08:00:01", "proxy1-2", GOOD)],
        },
        "proxy2": {"proxy2-1": [loaded("2026-03-27T08:00:02", "proxy2-1", GOOD)]},
    }
    for i, (host, worker) in enumerate(
        [("proxy1", "proxy1-1"), ("proxy1", "proxy1-2"), ("proxy2", "proxy2-1")]
    ):
        p[host][worker].append(access(f"2026-03-27T09:0{i}:00", worker, f"user{i}"))
    if drift_from and drift_to:
        w = p["proxy2"]["proxy2-1"]
        w.append(loaded(drift_from, "proxy2-1", OTHER))
        w.append(loaded(drift_to, "proxy2-1", GOOD))
    for workers in p.values():
        for worker, events in workers.items():
            events.append(stopped("2026-03-27T12:00:00", worker))
    return p


def sealed(host: str, events: list[tuple[Ev, str | None]]) -> str:
    lines, prev = [], GENESIS
    for seq, (ev, sha) in enumerate(sorted(events, key=lambda e: e[0].when), 1):
        r: dict[str, Any] = record(ev, seq)
        r["observer"]["hostname"] = host
        if sha is not None:
            r["socialgate"]["policy_sha256"] = sha
        s = seal(KEY, r, worker=ev.worker, seq=seq, prev=prev)
        prev = s["socialgate"]["chain"]["hash"]
        lines.append(canonical(s) + "\n")
    return "".join(lines)


def write_hosts(root: pathlib.Path, p: Plan) -> list[str]:
    """Each host's logs in its own directory, worker files named alike on both hosts."""
    files = []
    for host, workers in p.items():
        (root / host).mkdir(parents=True)
        for n, (_, events) in enumerate(sorted(workers.items()), 1):
            path = root / host / f"audit-{n}.jsonl"
            path.write_text(sealed(host, events))
            files.append(str(path))
    return files


@pytest.fixture
def key(tmp_path: pathlib.Path) -> str:
    (tmp_path / "keys").mkdir()
    return str(write_key(tmp_path / "keys"))


def test_verify_over_several_hosts(
    tmp_path: pathlib.Path, key: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Files of two hosts, same names in two directories: every chain verifies."""
    files = write_hosts(tmp_path / "case", plan())
    result = socialgate(capsysbinary, "audit", "verify", "--key", key, *files)
    assert result.code == 0, result.text
    assert "3 chains" in result.text
    for worker in ("proxy1-1", "proxy1-2", "proxy2-1"):
        assert f"{worker}: seq 1-3" in result.text


def test_search_and_stats_over_several_hosts(
    tmp_path: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Search finds every host's records; stats counts them once each."""
    files = write_hosts(tmp_path / "case", plan())
    found = socialgate(capsysbinary, "audit", "search", "--format", "json", *files)
    hosts = sorted(
        {line.split('"hostname":"', 1)[1].split('"', 1)[0] for line in found.text.splitlines()}
    )
    assert hosts == ["proxy1", "proxy2"]
    stats = socialgate_json(capsysbinary, "audit", "stats", "--format", "json", *files)
    assert stats["total"]["blocked_attempts"] == 3
    assert stats["total"]["distinct_users"] == 3


def test_drift_names_workers_policies_and_window(
    tmp_path: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """A worker on another policy for ten minutes is flagged, with both sha256s and when."""
    files = write_hosts(tmp_path / "case", plan("2026-03-27T10:00:00", "2026-03-27T10:10:00"))
    result = socialgate(capsysbinary, "audit", "drift", *files)
    assert result.code == 1
    lines = result.text.strip().splitlines()
    assert len(lines) == 2  # proxy2-1 against each worker of proxy1
    assert lines[0] == (
        f"policy drift: worker proxy1-1 ran policy {GOOD} while worker proxy2-1 ran {OTHER}, "
        "from 2026-03-27T10:00:00.000000Z to 2026-03-27T10:10:00.000000Z (600 s)"
    )
    assert "worker proxy1-2 ran" in lines[1]


@pytest.mark.parametrize(
    ("drift", "args", "code"),
    [
        ((None, None), (), 0),  # one policy everywhere
        (("2026-03-27T10:00:00", "2026-03-27T10:00:05"), (), 0),  # reload skew
        (("2026-03-27T10:00:00", "2026-03-27T10:00:05"), ("--grace", "0"), 1),
    ],
)
def test_drift_exit_status(
    tmp_path: pathlib.Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    drift: tuple[str | None, str | None],
    args: tuple[str, ...],
    code: int,
) -> None:
    """Exit 0 without drift (or within the grace), 1 with it."""
    files = write_hosts(tmp_path / "case", plan(*drift))
    assert socialgate(capsysbinary, "audit", "drift", *args, *files).code == code


def test_stopped_worker_does_not_drift(
    tmp_path: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """A worker that stopped before the others changed policy ran nothing meanwhile."""
    p = plan()
    p["proxy2"]["proxy2-1"] = [
        loaded("2026-03-27T08:00:02", "proxy2-1", GOOD),
        stopped("2026-03-27T09:00:00", "proxy2-1"),
    ]
    for worker in ("proxy1-1", "proxy1-2"):
        p["proxy1"][worker].insert(1, loaded("2026-03-27T10:00:00", worker, OTHER))
    files = write_hosts(tmp_path / "case", p)
    assert socialgate(capsysbinary, "audit", "drift", *files).code == 0


def test_stats_warns_of_drift(
    tmp_path: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """`audit stats` keeps its output and warns of drift on stderr."""
    files = write_hosts(tmp_path / "case", plan("2026-03-27T10:00:00", "2026-03-27T10:10:00"))
    result = socialgate(capsysbinary, "audit", "stats", *files)
    assert result.code == 0
    assert "warning: policy drift: worker proxy1-1" in result.err
