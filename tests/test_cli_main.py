"""The `socialgate` command itself: exit codes and one-line errors."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.proxy import BIN


def socialgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "socialgate"), *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        # usage errors: one line naming the command and the problem, exit 2
        (["bogus"], "No such command 'bogus'"),
        (["check", "--user", "carol"], "Missing argument 'URL'"),
        (["run", "--listen-port", "99999"], "--listen-port"),
        (["exempt", "grant", "--access", "sometimes"], "--access"),
        # bad input caught as SocialgateError: one line, exit 2
        (["policy", "validate", "/nonexistent/policy.yaml"], "/nonexistent/policy.yaml"),
        (["audit", "search", "--since", "yesterdayish"], "yesterdayish"),
    ],
)
def test_bad_usage_is_one_line_exit_2(args: list[str], fragment: str) -> None:
    """Every usage or input error is a single stderr line, exit status 2, no traceback."""
    res = socialgate(*args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert fragment in lines[0]
    assert "Traceback" not in res.stderr


def test_help_lists_commands() -> None:
    """`socialgate --help` lists every command group."""
    res = socialgate("--help")
    assert res.returncode == 0
    for name in ("run", "policy", "check", "exempt", "audit"):
        assert f"  {name} " in res.stdout
