"""The deploy/ systemd units as the tests run them: ExecStart= and Environment= of a unit,
with systemd's specifiers (%i, %l, %H) and the installation's paths swapped for a test's."""

from __future__ import annotations

import pathlib
import shlex
from collections.abc import Mapping

from tests.support.proxy import BIN, ROOT

DEPLOY = ROOT / "deploy"
UNIT_CONFDIR = "/etc/socialgate"
UNIT_LOGDIR = "/var/log/socialgate"


def exec_start(unit: pathlib.Path) -> list[str]:
    """ExecStart= of ``unit``, continuation lines joined, split as systemd would."""
    text = unit.read_text().replace("\\\n", " ")
    line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def environment(unit: pathlib.Path) -> dict[str, str]:
    """Environment= lines of ``unit`` (one NAME=value each)."""
    env: dict[str, str] = {}
    for line in unit.read_text().splitlines():
        if line.startswith("Environment="):
            name, _, value = line.removeprefix("Environment=").partition("=")
            env[name] = value
    return env


def specify(value: str, specifiers: Mapping[str, str]) -> str:
    """``value`` with systemd's %-specifiers replaced (``%%`` is a literal percent sign)."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "%" and i + 1 < len(value):
            key = value[i + 1]
            out.append("%" if key == "%" else specifiers[key])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def service_argv(
    unit: pathlib.Path,
    specifiers: Mapping[str, str],
    paths: Mapping[str, pathlib.Path],
) -> list[str]:
    """The unit's command for this checkout's `socialgate`, specifiers and ``paths`` replaced."""
    argv = [specify(a, specifiers) for a in exec_start(unit)]
    assert pathlib.Path(argv[0]).name == "socialgate", argv[0]

    def local(arg: str) -> str:
        for unit_path, test_path in paths.items():
            arg = arg.replace(unit_path, str(test_path))
        return arg

    return [str(BIN / "socialgate"), *(local(a) for a in argv[1:])]


def with_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with the value after ``flag`` replaced (the flag must be there)."""
    i = argv.index(flag)
    return [*argv[: i + 1], value, *argv[i + 2 :]]
