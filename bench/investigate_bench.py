"""Benchmark of the investigators' commands over a large generated audit trail.

    python bench/investigate_bench.py --records 1000000

Generates N records (two workers' files, 60 users, 90 days) with the proxy's
own record builder, then times `audit search`, `audit report` and `audit
stats` as real subprocesses, reporting wall time and peak RSS of each.
Chain fields are present but not valid HMACs: the report runs without --key.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy_addons.audit.record import Access, access_record  # noqa: E402
from proxy_addons.decide import Decision, Outcome, Reason  # noqa: E402

SITES = ["facebook.com", "x.com", "linkedin.com", "instagram.com", "tiktok.com", "reddit.com"]
USERS = [f"user{i:02d}" for i in range(60)]
POLICY = """\
version: 1
organisation: Bench
contact: it@example.org
policy_url: https://example.org/policy
timezone: Europe/London
categories:
  social_networking:
    domains: [facebook.com, x.com, linkedin.com, instagram.com, tiktok.com, reddit.com]
blocked_categories: [social_networking]
groups:
  press: [user00, user01, user02]
exemptions:
  - id: EX-1
    group: press
    sites: [x.com, linkedin.com]
    access: full
    business_case: Bench
    approved_by: boss
    granted: 2026-01-01
    expires: 2026-12-31
"""


def templates() -> list[str]:
    """Canonical lines with %(ts)s, %(ref)s, %(seq)s, %(w)s holes, one per (user, site, outcome)."""
    out = []
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for user in USERS:
        for site in SITES:
            for allowed in (False, True):
                d = Decision(
                    Outcome.ALLOWED if allowed else Outcome.BLOCKED,
                    Reason.EXEMPTION if allowed else Reason.NO_EXEMPTION,
                    host="www." + site,
                    category="social_networking",
                    entry=site,
                    site=site,
                    exemption_id="EX-1" if allowed else None,
                    names=("www." + site,),
                )
                a = Access(
                    user=user,
                    identity="proxyauth",
                    groups=(),
                    source_ip="10.1.2.3",
                    source_port=40000,
                    stage="request",
                    scheme="https",
                    domain="www." + site,
                    port=443,
                    method="GET",
                    path="/feed/home",
                    status_code=200 if allowed else 403,
                )
                r = access_record(d, a, ref="REF", policy_sha256="f" * 64, now=now)
                r["socialgate"]["chain"] = {
                    "worker": "W",
                    "seq": 0,
                    "prev": "p" * 64,
                    "hash": "h" * 64,
                }
                line = json.dumps(r, sort_keys=True, separators=(",", ":"))
                line = line.replace("%", "%%").replace('"REF"', '"%(ref)s"')
                line = line.replace('"2026-01-01T00:00:00.000000Z"', '"%(ts)s"')
                line = line.replace('"seq":0', '"seq":%(seq)d').replace(
                    '"worker":"W"', '"worker":"%(w)s"'
                )
                out.append(line + "\n")
    return out


def generate(directory: pathlib.Path, n: int) -> list[pathlib.Path]:
    rng = random.Random(7)
    tpl = templates()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    span = 90 * 86400
    files = [directory / "audit-w1.jsonl", directory / "audit-w2.jsonl"]
    handles = [p.open("w", encoding="utf-8") for p in files]
    step = span / n
    for i in range(n):
        w = i % 2
        t = start + i * step
        ts = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        line = tpl[rng.randrange(len(tpl))] % {
            "ts": ts,
            "ref": f"SG-B{i:010d}",
            "seq": i // 2 + 1,
            "w": f"w{w + 1}",
        }
        handles[w].write(line)
    for h in handles:
        h.close()
    return files


def run(label: str, args: list[str], cwd: pathlib.Path) -> dict[str, object]:
    """One command as a subprocess: wall time and peak RSS (from wait4)."""
    cmd = [sys.executable, "-c", "from proxy_addons.cli.main import main; main()", *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{label}: exit {proc.returncode}: {err}")
    rss_mb = usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime  # one process, one core: CPU time is the honest figure
    print(f"{label:<44} {wall:7.2f} s wall {cpu:7.2f} s CPU {rss_mb:7.1f} MB peak RSS", flush=True)
    return {
        "command": label,
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "peak_rss_mb": round(rss_mb, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    ap.add_argument(
        "--only",
        choices=("search", "report", "stats"),
        action="append",
        help="run only these commands (repeatable); stats then runs every --by",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp:
        d = pathlib.Path(args.keep or tmp)
        d.mkdir(parents=True, exist_ok=True)
        (d / "policy.yaml").write_text(POLICY)
        t0 = time.perf_counter()
        logs = [str(p) for p in generate(d, args.records)]
        size = sum(pathlib.Path(p).stat().st_size for p in logs) / 1e6
        print(
            f"generated {args.records} records ({size:.0f} MB, 2 files) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        common = ["--policy", "policy.yaml"]
        runs = [
            (
                "search --user (1/60 of records), json",
                ["audit", "search", *common, "--user", "user07", "--format", "json", *logs],
            ),
            (
                "search --site x.com --outcome blocked, csv",
                [
                    "audit",
                    "search",
                    *common,
                    "--site",
                    "x.com",
                    "--outcome",
                    "blocked",
                    "--format",
                    "csv",
                    *logs,
                ],
            ),
            (
                "search --since/--until one day, table",
                [
                    "audit",
                    "search",
                    *common,
                    "--since",
                    "2026-02-01",
                    "--until",
                    "2026-02-01",
                    *logs,
                ],
            ),
            (
                "search, no filter (every record), json",
                ["audit", "search", *common, "--format", "json", *logs],
            ),
            (
                "report --user --html",
                ["audit", "report", *common, "--user", "user07", "--html", "report.html", *logs],
            ),
            ("stats (totals)", ["audit", "stats", *common, *logs]),
            ("stats --by month", ["audit", "stats", *common, "--by", "month", *logs]),
            (
                "stats --by site --suppress-below 5",
                ["audit", "stats", *common, "--by", "site", "--suppress-below", "5", *logs],
            ),
        ]
        if args.only:
            runs = [r for r in runs if r[1][1] in args.only]
            if "stats" in args.only:
                runs += [
                    (f"stats --by {by}", ["audit", "stats", *common, "--by", by, *logs])
                    for by in ("user", "group", "category", "outcome")
                ]
        results = [run(label, argv, d) for label, argv in runs]
        if args.json:
            pathlib.Path(args.json).write_text(
                json.dumps(
                    {"records": args.records, "mb": round(size), "results": results}, indent=2
                )
            )


if __name__ == "__main__":
    main()
