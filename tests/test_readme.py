"""Every `socialgate` command README shows runs as shown (in a scratch copy of the project)."""

from __future__ import annotations

import datetime as dt
import pathlib
import re
import shlex
import shutil
import subprocess

import pytest

from tests.support.client import plain_get
from tests.support.proxy import BIN, ROOT, Proxy

pytestmark = pytest.mark.integration

README = ROOT / "README.md"


def readme_commands() -> list[list[str]]:
    """The `socialgate …` commands in README's ```sh blocks, continuation lines joined."""
    commands: list[list[str]] = []
    in_block = False
    pending = ""
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_block = line.strip() == "```sh"
            continue
        if not in_block:
            continue
        if pending:
            pending += " " + line.strip()
        elif line.startswith("socialgate "):
            pending = line.strip()
        else:
            continue
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        commands.append(shlex.split(pending, comments=True))
        pending = ""
    return commands


def with_fresh_dates(argv: list[str]) -> list[str]:
    """Expiry dates written in README go stale: keep the command, move the date ahead."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--expires" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", out[i + 1]):
            out[i + 1] = str(dt.date.today() + dt.timedelta(days=90))
    return out


def test_readme_shows_every_command_group() -> None:
    """README documents each command the product contract names."""
    shown = {" ".join(c[:3]) for c in readme_commands()}
    for expected in (
        "socialgate run --policy",
        "socialgate policy validate",
        "socialgate exempt grant",
        "socialgate exempt renew",
        "socialgate exempt revoke",
        "socialgate exempt list",
        "socialgate audit verify",
        "socialgate audit search",
        "socialgate audit report",
        "socialgate audit stats",
    ):
        assert any(s.startswith(expected) for s in shown), expected
    assert any(c[1] == "check" for c in readme_commands())


def test_readme_commands_run(tmp_path: pathlib.Path) -> None:
    """In a copy of the shipped policy with a real proxy's log, each README command exits 0."""
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    proxy = Proxy(
        tmp_path,
        pathlib.Path("policies/policy.yaml"),
        tmp_path / "logs" / "audit.jsonl",
        1,
        2,
    ).start()
    try:
        blocked = plain_get(proxy.port, "http://www.facebook.com/", "www.facebook.com")
        assert blocked.startswith(b"HTTP/1.1 403")
    finally:
        proxy.stop()
    for argv in readme_commands():
        if argv[1] == "run":
            continue  # runs until stopped: tests/test_startup_integration.py starts it
        res = subprocess.run(
            [str(BIN / "socialgate"), *with_fresh_dates(argv[1:])],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, f"{shlex.join(argv)}\n{res.stdout}\n{res.stderr}"
    assert (tmp_path / "alice-report.html").exists()
