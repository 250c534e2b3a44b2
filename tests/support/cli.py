"""Run the real `socialgate` entry point in this process, as a user at a terminal would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from proxy_addons.cli.main import main


@dataclass(frozen=True)
class Run:
    """Exit code and text output of one command."""

    code: int
    out: str
    err: str


class Socialgate(Protocol):
    """`socialgate ARGS…`, bound to a test's captured output."""

    def __call__(self, *args: str) -> Run: ...


def make_runner(capsys: pytest.CaptureFixture[str]) -> Socialgate:
    """Run `socialgate ARGS…` in this process; returns exit code and output."""

    def run(*args: str) -> Run:
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        out, err = capsys.readouterr()
        code = exc.value.code
        return Run(code if isinstance(code, int) else 1, out, err)

    return run


@dataclass(frozen=True, slots=True)
class Result:
    """Exit code, raw stdout (reports may be binary-exact) and stderr of one command."""

    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode("utf-8")

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


def socialgate(capsys: pytest.CaptureFixture[bytes], *argv: str) -> Result:
    """Run `socialgate ARGV…` with binary capture; a normal return counts as exit code 0."""
    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err.decode("utf-8"))


def socialgate_json(capsys: pytest.CaptureFixture[bytes], *argv: str) -> dict[str, Any]:
    """Run `socialgate ARGV…`, which must succeed, and parse its JSON output."""
    result = socialgate(capsys, *argv)
    assert result.code == 0, result.err
    data: dict[str, Any] = json.loads(result.out)
    return data
