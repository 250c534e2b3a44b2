"""A real mitmdump with forward-secure sealing: idle epochs are sealed and old keys erased."""

from __future__ import annotations

import json
import pathlib
import time

from proxy_addons.audit import epochs
from proxy_addons.audit.verify import verify_logs
from tests.support.proxy import Proxy
from tests.support.upstream import Servers


def test_idle_epochs_are_sealed_and_the_key_file_forgets(
    tmp_path: pathlib.Path, policy_dir: pathlib.Path, servers: Servers
) -> None:
    """With a 1 s epoch and no traffic, each epoch gets its seal and the old key leaves the file."""
    seal_dir, seed_path = tmp_path / "seal", tmp_path / "offline.seed"
    seed = epochs.new_seed()
    seed_path.write_text(epochs.seed_text(seed), encoding="ascii")
    epochs.enrol(seal_dir, seed, "w1", "2026-01-01T00:00:00.000000Z")
    state_file = epochs.state_path(seal_dir, "w1")
    k0 = epochs.initial_key(seed, "w1").hex().encode()
    assert k0 in state_file.read_bytes()
    log = tmp_path / "logs" / "audit.jsonl"
    proxy = Proxy(
        tmp_path, policy_dir / "policy.yaml", log, servers.http.port, servers.https.port,
        options=(
            "--set", f"proxyauth=@{policy_dir / 'htpasswd'}",
            "--set", f"socialgate_audit_seal_dir={seal_dir}",
            "--set", "socialgate_audit_epoch_seconds=1",
            "--set", "socialgate_audit_worker=w1",
            "--set", "socialgate_audit_signing_key=",
        ),
    ).start()  # fmt: skip
    try:
        time.sleep(3.5)
        during = state_file.read_bytes()
    finally:
        assert proxy.stop() == 0, "".join(proxy.output)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    seals = [r for r in records if r["event"]["action"] == "epoch-sealed"]
    idle = [s for s in seals if s["socialgate"]["epoch"]["reason"] == "elapsed"]
    assert len(idle) >= 2, [s["message"] for s in seals]
    assert seals[-1]["socialgate"]["epoch"]["reason"] == "shutdown"
    state = epochs.load_state(seal_dir, "w1")
    assert state.epoch == len(seals)
    assert k0 not in during
    assert k0 not in state_file.read_bytes()
    assert len(state_file.read_bytes()) == epochs.STATE_SIZE
    assert not (tmp_path / "keys").exists()  # no static chain key is made when sealing
    report = verify_logs([log], seed_path=seed_path)
    assert report.ok, report.problems
    assert all(e.sealed for e in report.epochs["w1"])
