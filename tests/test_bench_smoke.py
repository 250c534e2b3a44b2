"""`bench/run.py --smoke`: every scenario runs end to end and prints a sane table row."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration

# The rows of the table, plus the reference row for mitmproxy's own proxyauth.
RATIO_ROWS = [
    "plain-http",
    "https-passthrough-keepalive",
    "https-passthrough-new-conn",
    "https-intercept-exempt",
    "https-intercept-exempt-fsync-interval",
    "blocked-http",
    "blocked-http-fsync-interval",
    "blocked-https",
    "proxyauth-bcrypt",
    "proxyauth-mitmproxy",
    "addon-dispatch",
    "category-vs-block-list",
    "list-size-mid",
    "list-size-max",
    # Scale-out (bench/scaleout.py): HAProxy + 1 worker and + 2 workers against one direct.
    *(
        f"scaleout-{w}-{side}"
        for w in ("plain-http", "https-passthrough-new-conn", "https-intercept-exempt")
        for side in ("balancer", "two-workers")
    ),
]
OTHER_ROWS = ["policy-load-max", "rss-max", "soak-rss", "decide"]
NUMBER = r"([0-9][0-9,]*(?:\.[0-9]+)?)"


def _num(text: str) -> float:
    return float(text.replace(",", ""))


# The finished run and its result table, rows keyed by their first cell.
Smoke = tuple[subprocess.CompletedProcess[str], dict[str, list[str]]]


@pytest.fixture(scope="module")
def smoke() -> Smoke:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("| ") and not line.startswith("| key "):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows[cells[0]] = cells
    return proc, rows


def test_smoke_exits_zero(smoke: Smoke) -> None:
    """Every scenario produced a number, so the run exits 0."""
    proc, _ = smoke
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]


@pytest.mark.parametrize("key", RATIO_ROWS)
def test_ratio_row_is_measured(smoke: Smoke, key: str) -> None:
    """A comparison row shows two positive rates and their ratio, with a verdict."""
    _, rows = smoke
    assert key in rows, f"row {key} missing"
    _, _, baseline, measured, ratio, _, result, _ = rows[key]
    base = re.search(NUMBER + r" req/s", baseline)
    ours = re.search(NUMBER + r" req/s", measured)
    assert base, rows[key]
    assert ours, rows[key]
    assert _num(base.group(1)) > 0
    assert _num(ours.group(1)) > 0
    # Rates are printed rounded to whole requests per second.
    expected = _num(ours.group(1)) / _num(base.group(1))
    assert _num(ratio) == pytest.approx(expected, rel=0.02, abs=0.001)
    assert result in ("met", "MISSED", "info")


@pytest.mark.parametrize(
    ("key", "pattern", "low", "high"),
    [
        ("policy-load-max", NUMBER + r" s CPU$", 0.0, 60.0),
        ("rss-max", NUMBER + r" MB$", 20.0, 4000.0),
        ("soak-rss", r"RSS at end: " + NUMBER + r" MB", 20.0, 4000.0),
        ("decide", NUMBER + r" decisions/s", 1000.0, 1e8),
    ],
)
def test_other_row_is_measured(
    smoke: Smoke,
    key: str,
    pattern: str,
    low: float,
    high: float,
) -> None:
    """Load time, memory and decision-rate rows carry a plausible number and a verdict."""
    _, rows = smoke
    assert key in rows, f"row {key} missing"
    value = re.search(pattern, rows[key][3])
    assert value, rows[key]
    assert low < _num(value.group(1)) < high
    assert rows[key][6] in ("met", "MISSED")


def test_soak_audits_every_social_response(smoke: Smoke) -> None:
    """Under load, every social response the client got has its audit record."""
    _, rows = smoke
    found = re.search(
        NUMBER + r" audit records for " + NUMBER + " social responses", rows["soak-rss"][7]
    )
    assert found, rows["soak-rss"]
    records, social = _num(found.group(1)), _num(found.group(2))
    assert social > 0
    assert records >= social
