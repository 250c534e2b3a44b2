"""The AuditTrail addon: options, lifecycle records, submission, privacy, ECS layout."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from proxy_addons.addons.audit_trail import AuditTrail
from proxy_addons.audit.pseudonym import Pseudonymiser
from proxy_addons.audit.record import Access, access_record, policy_reload_failed_record
from proxy_addons.audit.verify import series, verify_logs
from proxy_addons.decide import Decision, Outcome, Reason
from proxy_addons.errors import AuditUnavailable, PolicyError
from tests.support.audit_env import WHEN, drop_mitmproxy_log_handlers, rec


@pytest.fixture(autouse=True)
def _no_stale_handlers() -> Iterator[None]:
    yield
    drop_mitmproxy_log_handlers()


def options(root: pathlib.Path, **kw: Any) -> dict[str, Any]:
    base = {
        "socialgate_audit_log": str(root / "logs" / "audit.jsonl"),
        "socialgate_audit_key": str(root / "keys" / "audit-hmac.key"),
        "socialgate_audit_signing_key": str(root / "keys" / "audit-signing.key"),
    }
    base.update(kw)
    return base


def read(root: pathlib.Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in series(root / "logs" / "audit.jsonl"):
        out.extend(json.loads(line) for line in f.read_text().splitlines())
    return out


def run(root: pathlib.Path, body: Any, **kw: Any) -> AuditTrail:
    """Configure an AuditTrail in a mitmproxy test context, run ``body(addon)``, shut down."""

    async def main() -> AuditTrail:
        addon = AuditTrail()
        with taddons.context(addon) as tctx:
            tctx.configure(addon, **options(root, **kw))
            addon.start()
            try:
                await body(addon)
            finally:
                addon.done()
        return addon

    return asyncio.run(main())


ALLOWED = Decision(
    Outcome.ALLOWED, Reason.EXEMPTION, host="www.linkedin.com", category="social_networking",
    entry="linkedin.com", site="linkedin.com", exemption_id="EX-2026-001",
    names=("www.linkedin.com",),
)  # fmt: skip
SEEN = Access(
    user="alice", identity="proxyauth", groups=("press-office",), source_ip="127.0.0.1",
    source_port=50412, stage="request", scheme="https", domain="www.linkedin.com", port=443,
    method="GET", path="/feed", status_code=None,
)  # fmt: skip


def allowed_record() -> dict[str, Any]:
    return access_record(ALLOWED, SEEN, ref="SG-AAAAA-BBBBB", policy_sha256="ab" * 32, now=WHEN)


# --- options --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("socialgate_audit_fsync", "sometimes", "socialgate_audit_fsync=sometimes"),
        ("socialgate_audit_rotate_bytes", -1, "socialgate_audit_rotate_bytes=-1"),
        ("socialgate_audit_fsync_interval_ms", 0, "socialgate_audit_fsync_interval_ms=0"),
        ("socialgate_audit_key", "LOGDIR/audit.key", "keep the key out of the log directory"),
    ],
)
def test_bad_option_rejected(tmp_path: pathlib.Path, option: str, value: Any, words: str) -> None:
    """A bad value is an OptionsError naming the option and the value."""
    if isinstance(value, str):
        value = value.replace("LOGDIR", str(tmp_path / "logs"))
    addon = AuditTrail()
    with taddons.context(addon) as tctx:
        # A rejected update rolls back to the previous values: make those the test's own.
        tctx.configure(addon, **options(tmp_path))
        with pytest.raises(exceptions.OptionsError, match=words):
            tctx.configure(addon, **{option: value})
        addon.done()


def test_unwritable_log_is_start_error(tmp_path: pathlib.Path) -> None:
    """A log path that cannot be created stops the start with the option named."""
    (tmp_path / "file").write_text("a file, not a directory")
    addon = AuditTrail()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, **options(tmp_path))
        addon.start()
        with pytest.raises(exceptions.OptionsError, match=r"socialgate_audit_log=.*file/x"):
            tctx.configure(addon, socialgate_audit_log=str(tmp_path / "file" / "x"))
        addon.done()


def test_query_logging_option(tmp_path: pathlib.Path) -> None:
    """socialgate_audit_query is off by default and read by the gate as log_query."""
    addon = AuditTrail()
    with taddons.context(addon) as tctx:
        assert addon.log_query is False
        tctx.configure(addon, socialgate_audit_query=True)
        assert addon.log_query is True


# --- records --------------------------------------------------------------------


def test_lifecycle_and_access_records(tmp_path: pathlib.Path) -> None:
    """Start, an allowed access, a policy load and stop are written, chained and verifiable."""

    async def body(addon: AuditTrail) -> None:
        await addon.submit(allowed_record())
        addon.submit_nowait(rec(1))

    run(tmp_path, body)
    rs = read(tmp_path)
    actions = [r["event"]["action"] for r in rs]
    assert actions[0] == "audit-started"
    assert actions[-1] == "audit-stopped"
    assert actions[1:3] == ["request-allowed", "reminder-acknowledged"]
    report = verify_logs(
        series(tmp_path / "logs" / "audit.jsonl"),
        key_path=tmp_path / "keys" / "audit-hmac.key",
        checkpoints_path=tmp_path / "logs" / "audit.checkpoints",
        public_key_path=tmp_path / "keys" / "audit-signing.pub",
    )
    assert report.ok, report.problems
    assert report.checkpoints == 1  # at shutdown


def test_access_record_layout(tmp_path: pathlib.Path) -> None:
    """The written record is the built ECS record plus the chain, nothing else."""

    async def body(addon: AuditTrail) -> None:
        await addon.submit(allowed_record())

    run(tmp_path, body)
    written = read(tmp_path)[1]
    chain = written["socialgate"].pop("chain")
    assert set(chain) == {"worker", "seq", "prev", "hash"}
    assert written == json.loads(json.dumps(allowed_record()))
    assert written["@timestamp"] == "2026-11-25T10:00:00.000000Z"
    assert written["ecs"] == {"version": "8.11.0"}
    assert (written["event"]["action"], written["rule"]["id"]) == ("request-allowed", "EX-2026-001")


def test_policy_reload_failed_record(tmp_path: pathlib.Path) -> None:
    """A rejected reload is recorded as a failure with the error."""

    error = PolicyError([("policy.yaml", 3, "unknown key")])

    async def body(addon: AuditTrail) -> None:
        addon.submit_nowait(
            policy_reload_failed_record(
                error, path="policies/policy.yaml", in_force=None, trigger="change", now=WHEN
            )
        )

    run(tmp_path, body)
    r = read(tmp_path)[1]
    assert (r["event"]["action"], r["event"]["outcome"]) == ("policy-reload-failed", "failure")
    assert r["event"]["reason"] == "policy.yaml:3: unknown key"
    assert r["socialgate"]["errors"] == [
        {"file": "policy.yaml", "line": 3, "message": "unknown key"}
    ]


def test_submit_fails_closed_when_unwritable(tmp_path: pathlib.Path) -> None:
    """Log unwritable: submit raises AuditUnavailable; submit_nowait never raises."""

    async def body(addon: AuditTrail) -> None:
        (tmp_path / "logs" / "audit.jsonl").unlink()
        with pytest.raises(AuditUnavailable):
            await addon.submit(allowed_record())
        addon.submit_nowait(rec(1))

    run(tmp_path, body)


def test_submit_after_done_fails_closed(tmp_path: pathlib.Path) -> None:
    """After shutdown nothing is accepted silently."""
    addon = run(tmp_path, lambda a: asyncio.sleep(0))
    drop_mitmproxy_log_handlers()
    with pytest.raises(AuditUnavailable):
        asyncio.run(addon.submit(allowed_record()))
    addon.submit_nowait(rec(1))


def test_restart_through_addon_continues(tmp_path: pathlib.Path) -> None:
    """Two proxy runs on one log are one chain, with one worker id."""
    run(tmp_path, lambda a: a.submit(allowed_record()))
    run(tmp_path, lambda a: a.submit(allowed_record()))
    chains = [r["socialgate"]["chain"] for r in read(tmp_path)]
    assert [c["seq"] for c in chains] == list(range(1, len(chains) + 1))
    assert len({c["worker"] for c in chains}) == 1


# --- pseudonymisation -------------------------------------------------------------


def test_pseudonymised_user_names(tmp_path: pathlib.Path) -> None:
    """With a pseudonymisation key the name is nowhere in the record; the pseudonym is stable."""
    key_file = tmp_path / "hr" / "pseudonym.key"

    async def body(addon: AuditTrail) -> None:
        await addon.submit(allowed_record())
        await addon.submit(allowed_record())

    run(tmp_path, body, socialgate_audit_pseudonymise_key=str(key_file))
    first, second = read(tmp_path)[1:3]
    assert "alice" not in json.dumps(first)
    assert first["user"]["name"] == second["user"]["name"]
    assert first["user"]["name"] in first["message"]
    key = bytes.fromhex(key_file.read_text())
    assert Pseudonymiser(key).name("alice") == first["user"]["name"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("exemption granted to al by al", "exemption granted to P by P"),
        ("allowed for al: x.com", "allowed for P: x.com"),
        ("allowed for alice: x.com", "allowed for alice: x.com"),
    ],
)
def test_pseudonymiser_replaces_whole_names(message: str, expected: str) -> None:
    """Only the whole name is replaced in the message, never part of a word."""
    p = Pseudonymiser(b"k" * 32)
    out = p.apply({"message": message, "user": {"name": "al", "target": {"name": "al"}}})
    assert out["message"] == expected.replace("P", p.name("al"))
    assert out["user"]["target"]["name"] == p.name("al")


# --- timing ---------------------------------------------------------------------


def test_submit_does_not_block_the_loop(tmp_path: pathlib.Path) -> None:
    """Many concurrent submits complete; the loop keeps running while they are written."""

    async def body(addon: AuditTrail) -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        await asyncio.gather(*(addon.submit(allowed_record()) for _ in range(300)))
        t.cancel()
        assert ticks > 1

    run(tmp_path, body)
    assert sum(r["event"]["action"] == "request-allowed" for r in read(tmp_path)) == 300


def test_timestamps_are_utc(tmp_path: pathlib.Path) -> None:
    """Lifecycle records carry a UTC ISO-8601 @timestamp."""
    run(tmp_path, lambda a: asyncio.sleep(0))
    stamp = read(tmp_path)[0]["@timestamp"]
    parsed = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    assert abs(parsed - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
