"""`socialgate policy validate`: what an admin sees (output, exit code) for good and bad files."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from proxy_addons.cli.main import cli
from tests.support.policy_texts import PRODUCT_EXAMPLE, SHIPPED, VALID, write_policy

ROOT = Path(__file__).parent.parent
SOCIALGATE = ROOT / ".venv" / "bin" / "socialgate"

# Two problems: line 1 (version) and line 13 (access).
BAD = VALID.replace("version: 1", "version: 2").replace("access: full", "access: fullish")


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["policy", "validate", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_valid_policy_prints_one_ok_line(tmp_path: Path) -> None:
    """A valid policy: one line naming the file, counts and sha256; exit 0."""
    path = write_policy(tmp_path, VALID)
    code, out, err = run(str(path))
    sha = hashlib.sha256(VALID.encode()).hexdigest()
    assert (code, err) == (0, "")
    assert out == f"{path}: ok (1 category, 2 domains, 1 exemption, sha256 {sha})\n"


def test_invalid_policy_lists_every_error_on_stderr(tmp_path: Path) -> None:
    """An invalid policy: every error as file:line: message on stderr; exit 2."""
    path = write_policy(tmp_path, BAD)
    code, out, err = run(str(path))
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [f"{path}:1", f"{path}:13"]
    assert "unsupported version 2" in lines[0]
    assert "'full' or 'read-only'" in lines[1]


def test_json_success() -> None:
    """--format json on a valid policy: ok true, no errors, a summary; exit 0."""
    code, out, _ = run(str(PRODUCT_EXAMPLE), "--format", "json")
    doc = json.loads(out)
    assert code == 0
    assert (doc["ok"], doc["errors"]) == (True, [])
    s = doc["summary"]
    assert (s["categories"], s["domains"], s["exemptions"]) == (1, 9, 1)
    assert s["blocked_categories"] == ["social_networking"]
    assert len(s["sha256"]) == 64


def test_json_failure(tmp_path: Path) -> None:
    """--format json on an invalid policy: ok false and every error as an object; exit 2."""
    path = write_policy(tmp_path, BAD)
    code, out, err = run(str(path), "--format", "json")
    doc = json.loads(out)
    assert (code, err, doc["ok"], doc["summary"]) == (2, "", False, None)
    assert [(e["file"], e["line"]) for e in doc["errors"]] == [(str(path), 1), (str(path), 13)]


def test_category_list_error_names_the_list(tmp_path: Path) -> None:
    """An error inside a category file is reported against that file and line."""
    text = VALID.replace("    domains: [", "    domains_files: [c.txt]\n    domains: [")
    path = write_policy(tmp_path, text, {"c.txt": "ok.example\n\nbad entry\n"})
    code, _, err = run(str(path))
    assert code == 2
    assert err.startswith(f"{tmp_path / 'c.txt'}:3: ")


def test_missing_policy_file(tmp_path: Path) -> None:
    """A missing file is one line naming it; exit 2."""
    code, _, err = run(str(tmp_path / "nope.yaml"))
    assert code == 2
    assert err == f"{tmp_path / 'nope.yaml'}: cannot read policy file: No such file or directory\n"


def test_policy_defaults_to_environment(tmp_path: Path) -> None:
    """Without POLICY, $SOCIALGATE_POLICY is validated."""
    path = write_policy(tmp_path, VALID)
    code, out, _ = run(env={"SOCIALGATE_POLICY": str(path)})
    assert code == 0
    assert out.startswith(f"{path}: ok (")


def test_bad_format_is_a_usage_error() -> None:
    """An unknown --format is bad usage: exit 2."""
    code, _, err = run(str(SHIPPED), "--format", "xml")
    assert code == 2
    assert "xml" in err


@pytest.mark.parametrize(
    ("text", "code", "stream"),
    [(VALID, 0, "stdout"), (BAD, 2, "stderr"), ("a: &a [1]\nb: *a\n", 2, "stderr")],
    ids=["valid", "invalid", "alias"],
)
def test_real_command_exit_codes(tmp_path: Path, text: str, code: int, stream: str) -> None:
    """The installed command exits 0/2 and never prints a traceback."""
    path = write_policy(tmp_path, text)
    proc = subprocess.run(
        [str(SOCIALGATE), "policy", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == code
    assert "Traceback" not in proc.stdout + proc.stderr
    assert (proc.stdout if stream == "stdout" else proc.stderr).startswith(f"{path}")


def test_real_command_default_policy_is_the_shipped_one() -> None:
    """Run from the checkout with no argument, the shipped policy validates."""
    proc = subprocess.run(
        [str(SOCIALGATE), "policy", "validate"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.startswith("policies/policy.yaml: ok (1 category, ")
