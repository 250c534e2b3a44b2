"""The results table (markdown) and the machine description for RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata

from bench.procs import REPO

MET, MISSED, INFO, NA = "met", "MISSED", "info", "n/a"


@dataclass(frozen=True)
class Row:
    key: str
    scenario: str
    baseline: str  # what we compare against, with its number
    measured: str  # socialgate's number
    ratio: str
    target: str
    result: str  # MET, MISSED, INFO or NA
    notes: str = ""


HEADER = ("key", "scenario", "baseline", "socialgate", "ratio", "target", "result", "notes")


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        cells = (r.key, r.scenario, r.baseline, r.measured, r.ratio, r.target, r.result, r.notes)
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def _cmd(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "?"


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
    commit = _cmd("git", "-C", str(REPO), "rev-parse", "--short", "HEAD")
    dirty = _cmd("git", "-C", str(REPO), "status", "--porcelain")
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {len(os.sched_getaffinity(0))} cores usable",
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "mitmproxy": metadata.version("mitmproxy"),
        "socialgate": metadata.version("socialgate"),
        "hey": _cmd("dpkg-query", "-W", "-f", "${Version}", "hey") or "?",
        "commit": commit + (" (uncommitted changes)" if dirty else ""),
    }
