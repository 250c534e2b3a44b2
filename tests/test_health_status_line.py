"""The one line of STATUS= (systemctl status) that the Health addon builds from its snapshot."""

from __future__ import annotations

from typing import Any

import pytest

from proxy_addons.addons.health import Health

BASE: dict[str, Any] = {
    "policy": None,
    "last_reload": None,
    "audit": {"state": "writing", "seq": 7, "error": None},
    "records_lost_since_start": {"total": 0, "by_action": {}},
}
SHIPPING = {
    "target": "udp://192.0.2.1:514",
    "state": "failing",
    "shipped": 3,
    "pending": 2,
    "dropped": 0,
    "failures": 4,
    "last_error": "refused",
}


@pytest.mark.parametrize(
    ("shipping", "tail"),
    [
        # not shipping: nothing said about checkpoints
        (None, "0 records lost since start"),
        # shipping: target, state and counts
        (SHIPPING, "checkpoints to udp://192.0.2.1:514 failing: 3 shipped, 2 pending, 0 dropped"),
    ],
)
def test_status_line_tells_checkpoint_shipping(shipping: dict[str, Any] | None, tail: str) -> None:
    """STATUS= ends with the shipping state when checkpoints are shipped."""
    line = Health.status_line({**BASE, "checkpoint_shipping": shipping})
    assert line.startswith("no policy; audit writing at seq 7; ")
    assert line.endswith(tail)
