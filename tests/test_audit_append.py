"""append_records: the admin CLI's own chain file, locked, continued, checkpointed."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from proxy_addons.audit.append import append_records
from proxy_addons.audit.record import Record, event_record
from proxy_addons.audit.verify import VerifyReport, verify_logs
from proxy_addons.errors import AuditError
from tests.support.audit_env import WHEN, Env


def grant(i: int) -> Record:
    return event_record(
        "exemption-granted", f"exemption EX-{i} granted to carol by d.smith", now=WHEN,
        category=["configuration", "iam"], type_=["creation"], user="d.smith",
        target_user="carol", socialgate={"exemption_id": f"EX-{i}"},
    )  # fmt: skip


@pytest.fixture
def env(tmp_path: pathlib.Path) -> Env:
    return Env(tmp_path)


def admin_log(env: Env) -> pathlib.Path:
    return env.root / "logs" / "admin-audit.jsonl"


def append(env: Env, *records: Record) -> None:
    append_records(
        admin_log(env), list(records), key_path=env.key_path, signing_key_path=env.signing_path
    )


def verify(env: Env) -> VerifyReport:
    return verify_logs(
        [admin_log(env)], key_path=env.key_path,
        checkpoints_path=env.root / "logs" / "admin-audit.checkpoints",
        public_key_path=env.pub_path,
    )  # fmt: skip


def test_appends_continue_one_chain(env: Env) -> None:
    """Separate invocations continue the chain; each is checkpointed; the file verifies."""
    append(env, grant(1))
    append(env, grant(2), grant(3))
    lines = admin_log(env).read_text().splitlines()
    assert [json.loads(x)["socialgate"]["chain"]["seq"] for x in lines] == [1, 2, 3]
    assert json.loads(lines[0])["user"] == {"name": "d.smith", "target": {"name": "carol"}}
    report = verify(env)
    assert report.ok, report.problems
    assert report.checkpoints == 2


def test_truncated_admin_log_detected(env: Env) -> None:
    """Dropping the last admin record is caught by the checkpoint the CLI signed."""
    append(env, grant(1))
    append(env, grant(2))
    lines = admin_log(env).read_text().splitlines(keepends=True)
    admin_log(env).write_text(lines[0])
    assert not verify(env).ok


def test_refuses_the_proxys_live_log(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy's live file is locked: the CLI gets a clear error, not a race."""
    monkeypatch.setattr("proxy_addons.audit.append.LOCK_WAIT_SECONDS", 0.2)
    with env.writing(), pytest.raises(AuditError, match="locked by another process"):
        append_records(env.log, [grant(1)], key_path=env.key_path)


CONCURRENT = textwrap.dedent(
    """
    import pathlib, sys
    sys.path.insert(0, sys.argv[2])
    from tests.test_audit_append import grant
    from proxy_addons.audit.append import append_records
    root = pathlib.Path(sys.argv[1])
    for i in range(20):
        append_records(root / "logs" / "admin-audit.jsonl", [grant(i)],
                       key_path=root / "keys" / "audit-hmac.key")
    """
)


def test_concurrent_appenders_serialise(env: Env) -> None:
    """Three processes appending at once still produce one intact chain."""
    root = str(pathlib.Path(__file__).parents[1])
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT, str(env.root), root]) for _ in range(3)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    report = verify_logs([admin_log(env)], key_path=env.key_path)
    assert report.ok, report.problems
    assert report.records == 60
