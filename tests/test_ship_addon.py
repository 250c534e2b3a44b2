"""The CheckpointShipping addon: its option, refusals, and the counts it shows."""

from __future__ import annotations

import asyncio
import json
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from proxy_addons.addons.audit_trail import AuditTrail
from proxy_addons.addons.checkpoint_ship import CheckpointShipping
from tests.support.audit_env import drop_mitmproxy_log_handlers, rec
from tests.support.syslog import DatagramCollector, refused_port, wait_for


@pytest.fixture(autouse=True)
def _no_stale_handlers() -> Iterator[None]:
    yield
    drop_mitmproxy_log_handlers()


def options(root: pathlib.Path, **kw: Any) -> dict[str, Any]:
    return {
        "socialgate_audit_log": str(root / "logs" / "audit.jsonl"),
        "socialgate_audit_key": str(root / "keys" / "audit-hmac.key"),
        "socialgate_audit_signing_key": str(root / "keys" / "audit-signing.key"),
        "socialgate_audit_checkpoint_records": 1,
        **kw,
    }


def shipped_count(ship: CheckpointShipping) -> int:
    snap = ship.snapshot()
    return int(snap["shipped"]) if snap is not None else 0


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("tcp://collector", "socialgate_checkpoint_syslog=tcp://collector: the port is missing"),
        ("udp://h:99999", "socialgate_checkpoint_syslog=udp://h:99999: bad port '99999'"),
        ("unix:dev/log", "socialgate_checkpoint_syslog=unix:dev/log: a unix socket needs"),
        ("https://vault/", "socialgate_checkpoint_syslog=https://vault/: expected unix:/PATH"),
    ],
)
def test_bad_target_is_options_error(tmp_path: pathlib.Path, value: str, words: str) -> None:
    """A bad value is an OptionsError naming the option and the value."""
    audit = AuditTrail()
    ship = CheckpointShipping(audit)
    with taddons.context(audit, ship) as tctx:
        tctx.configure(audit, **options(tmp_path))
        with pytest.raises(exceptions.OptionsError, match=words.replace("?", r"\?")):
            tctx.configure(ship, socialgate_checkpoint_syslog=value)
        assert ship.shipper is None


def test_shipping_without_signing_key_refused(tmp_path: pathlib.Path) -> None:
    """Shipping asked for with no signing key (so no checkpoints) is refused, not ignored."""
    audit = AuditTrail()
    ship = CheckpointShipping(audit)
    with taddons.context(audit, ship) as tctx:
        tctx.configure(audit, **options(tmp_path))
        with pytest.raises(exceptions.OptionsError, match="socialgate_audit_signing_key is empty"):
            tctx.configure(
                ship,
                socialgate_checkpoint_syslog="udp://127.0.0.1:514",
                socialgate_audit_signing_key="",
            )


def test_default_ships_nothing(tmp_path: pathlib.Path) -> None:
    """With the option empty there is no shipper, and the status says so."""
    audit = AuditTrail()
    ship = CheckpointShipping(audit)
    with taddons.context(audit, ship) as tctx:
        tctx.configure(audit, **options(tmp_path))
        assert ship.snapshot() is None
        assert ship.status_line() == "checkpoints not shipped"


def test_trail_checkpoints_are_shipped_and_counted(tmp_path: pathlib.Path) -> None:
    """Checkpoints the trail signs, the one at its stop included, reach the target; the
    counts are in the snapshot."""
    collector = DatagramCollector.udp()
    target = f"udp://127.0.0.1:{collector.port}"

    async def main() -> tuple[dict[str, Any] | None, str]:
        audit = AuditTrail()
        ship = CheckpointShipping(audit)
        with taddons.context(audit, ship) as tctx:
            tctx.configure(audit, **options(tmp_path))
            tctx.configure(ship, socialgate_checkpoint_syslog=target)
            audit.start()
            ship.running()
            audit.submit_nowait(rec(1))
            for _ in range(100):
                await asyncio.sleep(0.05)
                if shipped_count(ship) >= 1:
                    break
            snap, line = ship.snapshot(), ship.status_line()
            audit.done()
            ship.done()
        return snap, line

    snap, line = asyncio.run(main())
    local = (tmp_path / "logs" / "audit.checkpoints").read_text().splitlines()
    wait_for(lambda: len(collector.received) == len(local), 5, "every checkpoint")
    shipped = [json.loads(m[m.index(b"{") :]) for m in collector.received]
    assert shipped == [json.loads(x) for x in local]
    assert snap is not None
    assert (snap["target"], snap["state"], snap["dropped"]) == (target, "ok", 0)
    assert line.startswith(f"checkpoints to {target}: ok, ")


def test_retarget_never_holds_the_event_loop(tmp_path: pathlib.Path) -> None:
    """Changing the target while the old collector is away returns at once; the old
    shipper finishes (and gives up) in the background."""
    audit = AuditTrail()
    ship = CheckpointShipping(audit)
    with refused_port() as port, taddons.context(audit, ship) as tctx:
        tctx.configure(audit, **options(tmp_path))
        tctx.configure(ship, socialgate_checkpoint_syslog=f"tcp://127.0.0.1:{port}")
        old = ship.shipper
        assert old is not None
        old.offer({"n": 1})
        started = time.monotonic()
        tctx.configure(ship, socialgate_checkpoint_syslog="udp://127.0.0.1:9")
        assert time.monotonic() - started < 0.5
        snap = ship.snapshot()
        assert snap is not None
        assert snap["target"] == "udp://127.0.0.1:9"
        ship.done()
