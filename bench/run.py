"""socialgate benchmarks: socialgate against bare mitmdump, side by side, in one run.

    .venv/bin/python bench/run.py            # full run (make bench), about 11 minutes
    .venv/bin/python bench/run.py --smoke    # every scenario, tiny sizes, under a minute
    .venv/bin/python bench/run.py --soak 600 # with the 10-minute memory soak
    .venv/bin/python bench/run.py --record   # also write the table into bench/RESULTS.md

Starts on 127.0.0.1 (ephemeral ports only): a plain and a TLS origin, bare
mitmdump variants and socialgate variants, all with the same bench resolver
addon. Drives them with `hey` (installed with apt-get if missing), alternating
sides A B A B, and prints a markdown table of medians and ratios. The exit
status is 0 when every scenario produced a number (targets may still be
missed: read the table); 1 when a scenario could not be measured; 2 when `hey`
cannot be installed.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.certs import make_upstream_certs
from bench.compare import Comparison, Side, SideOptions, SideResult, run_comparison
from bench.loadgen import BenchSetupError, LoadResult, ensure_hey, parse_hey, run_hey
from bench.procs import REPO, Origin, Proxy, rss_mb, start_mitmdump, start_origin, stop
from bench.report import INFO, MET, MISSED, NA, Row, machine, table
from bench.scaleout import BALANCERS, start_balancer, worker_args
from bench.scaleout import comparisons as scaleout_comparisons
from bench.workload import (
    BENCH_PASSWORD,
    BENCH_USER,
    BLOCKED_HOST,
    CERT_NAMES,
    EXEMPT_HOST,
    PLAIN_HOST,
    write_block_list_confdir,
    write_htpasswd,
    write_policy,
)
from proxy_addons.audit.verify import series

RESULTS = REPO / "bench" / "RESULTS.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


@dataclass(frozen=True)
class Config:
    seconds: float  # one measured run
    warmup: float
    rounds: int  # A B rounds per comparison
    concurrency: int
    category_size: int  # the category compared with mitmproxy's block_list
    list_sizes: tuple[int, int, int]  # small (the everyday policy), mid, max
    decide_seconds: float
    soak: float


FULL = Config(5, 1, 3, 8, 100_000, (1_000, 100_000, 1_000_000), 3, 120)
SMOKE = Config(0.6, 0.3, 1, 4, 1_000, (1_000, 3_000, 10_000), 0.3, 3)

PLAIN = f"http://{PLAIN_HOST}/"
PLAIN_TLS = f"https://{PLAIN_HOST}/"
EXEMPT_TLS = f"https://{EXEMPT_HOST}/"
BLOCKED = f"http://{BLOCKED_HOST}/"
BLOCKED_TLS = f"https://{BLOCKED_HOST}/"
CREDS = f"{BENCH_USER}:{BENCH_PASSWORD}"
BARE = "bare mitmdump"
SCALEOUT_POLICY = 1_000  # the scale-out workers' policy: the everyday list size
SG = "socialgate"


def comparisons(cfg: Config) -> list[Comparison]:
    small, mid, big = cfg.list_sizes
    sg = f"sg-{small}"
    cat = cfg.category_size

    def pair(label: str, url: str, **kw: Unpack[SideOptions]) -> tuple[Side, Side]:
        return (Side(f"{BARE} ({label})", "bare", url, **kw), Side(SG, sg, url, **kw))

    return [
        Comparison(
            "plain-http",
            "non-social plain HTTP, keep-alive",
            pair("plain", PLAIN),
            0.97,
            "≥ 97 % of bare",
        ),
        Comparison(
            "addon-dispatch",
            "reference: bare mitmdump + 4 empty addons (mitmproxy's per-addon dispatch)",
            (
                Side(f"{BARE} (plain)", "bare", PLAIN),
                Side(f"{BARE} + 4 empty addons", "bare-noop", PLAIN),
            ),
            None,
            "(reference)",
        ),
        Comparison(
            "https-passthrough-keepalive",
            "non-social HTTPS passed through, keep-alive tunnels",
            pair("ignore_hosts", PLAIN_TLS),
            0.95,
            "≥ 95 % of bare",
        ),
        Comparison(
            "https-passthrough-new-conn",
            "non-social HTTPS passed through, one CONNECT + TLS handshake per request",
            pair("ignore_hosts", PLAIN_TLS, keepalive=False),
            0.95,
            "≥ 95 % of bare",
        ),
        Comparison(
            "https-intercept-exempt",
            "social, exempt user, HTTPS intercepted and audited",
            pair("intercepting", EXEMPT_TLS),
            0.90,
            "≥ 90 % of bare",
        ),
        Comparison(
            "https-intercept-exempt-fsync-interval",
            "reference: as above with socialgate_audit_fsync=interval (fsync once a second)",
            (
                Side(f"{BARE} (intercepting)", "bare", EXEMPT_TLS),
                Side(f"{SG} fsync=interval", f"{sg}-interval", EXEMPT_TLS),
            ),
            None,
            "(cost of fsync=always)",
        ),
        Comparison(
            "blocked-http",
            "blocked social requests, plain HTTP (block page vs fixed 403)",
            pair("block_list 403", BLOCKED, expect=403),
            1.0,
            "≥ bare",
        ),
        Comparison(
            "blocked-http-fsync-interval",
            "reference: as above with socialgate_audit_fsync=interval",
            (
                Side(f"{BARE} (block_list 403)", "bare", BLOCKED, expect=403),
                Side(f"{SG} fsync=interval", f"{sg}-interval", BLOCKED, expect=403),
            ),
            None,
            "(cost of fsync=always)",
        ),
        Comparison(
            "blocked-https",
            "blocked social requests, HTTPS intercepted (block page vs fixed 403)",
            pair("intercepting, block_list 403", BLOCKED_TLS, expect=403),
            1.0,
            "≥ bare",
        ),
        Comparison(
            "proxyauth-bcrypt",
            "plain HTTP with proxy auth, bcrypt (cost 10) htpasswd",
            (
                Side(f"{SG} without auth", sg, PLAIN),
                Side(f"{SG} + proxyauth", f"{sg}-auth", PLAIN, credentials=CREDS),
            ),
            0.90,
            "≥ 90 % of unauthenticated",
        ),
        Comparison(
            "proxyauth-mitmproxy",
            "reference: mitmproxy's own proxyauth, same htpasswd",
            (
                Side(f"{BARE} without auth", "bare", PLAIN),
                Side(f"{BARE} + proxyauth", "bare-auth", PLAIN, credentials=CREDS),
            ),
            None,
            "(issue: ~1.5 %)",
            rounds=1,
        ),
        Comparison(
            "category-vs-block-list",
            f"category of {cat:,} domains vs block_list with the same {cat:,}",
            (
                Side(f"{BARE} block_list ({cat:,} rules)", f"blocklist-{cat}", PLAIN),
                Side(f"{SG} ({cat:,} domains)", f"sg-{cat}", PLAIN),
            ),
            10.0,
            "≥ 10× block_list",
            rounds=min(cfg.rounds, 2),
        ),
        Comparison(
            "list-size",
            f"list size {small:,} → {mid:,} → {big:,} domains (plain HTTP)",
            (
                Side(f"{SG} ({small:,} domains)", f"sg-{small}", PLAIN),
                Side(f"{SG} ({mid:,} domains)", f"sg-{mid}", PLAIN),
                Side(f"{SG} ({big:,} domains)", f"sg-{big}", PLAIN),
            ),
            0.90,
            "within ±10 %",
            max_ratio=1.10,
        ),
        *scaleout_comparisons(PLAIN, PLAIN_TLS, EXEMPT_TLS),
    ]


def proxy_args(key: str, work: Path) -> list[str]:
    """mitmdump arguments (besides the common ones) for each kind of proxy."""
    htpasswd = f"--set=proxyauth=@{work / 'htpasswd'}"
    if key == "bare-noop":
        return [*proxy_args("bare", work), "-s", str(REPO / "bench" / "noop_addons.py")]
    if key in ("bare", "bare-auth"):
        # Bare mitmdump doing the same jobs its own way: pass non-social TLS through
        # with ignore_hosts, answer the blocked site with block_list's fixed 403.
        args = [
            "--set=ignore_hosts=\\.example(:\\d+)?$",
            "--set=block_list=/~d facebook\\.com$/403",
        ]
        return args + ([htpasswd] if key == "bare-auth" else [])
    if key.startswith("blocklist-"):
        return []  # rules are in the confdir's config.yaml
    if key.startswith("sgw-"):  # a scale-out worker (bench/scaleout.py)
        return worker_args(key, work, work / f"policy-{SCALEOUT_POLICY}" / "policy.yaml")
    size = key.removeprefix("sg-").removesuffix("-auth").removesuffix("-interval")
    args = [
        "-s",
        str(REPO / "proxy_addons" / "socialgate.py"),
        f"--set=socialgate_policy={work / f'policy-{size}' / 'policy.yaml'}",
        f"--set=socialgate_audit_log={work / f'audit-{key}.jsonl'}",
    ]
    if key.endswith("-interval"):
        # Records are written before the request goes on; fsync once a second.
        args.append("--set=socialgate_audit_fsync=interval")
    return args + ([htpasswd] if key.endswith("-auth") else [])


class Bench:
    def __init__(self, cfg: Config, hey: str, work: Path, only: set[str] | None) -> None:
        self.cfg = cfg
        self.hey = hey
        self.work = work
        self.only = only
        self.comps = [c for c in comparisons(cfg) if only is None or c.key in only]
        self.proxies: dict[str, Proxy] = {}
        self.failures: dict[str, str] = {}
        self.rows: list[Row] = []
        self.load_log = work / "hey.log"

    def wanted(self, key: str) -> bool:
        return self.only is None or key in self.only

    # -- set-up ----------------------------------------------------------------------

    def prepare(self) -> tuple[Path, Path, Path]:
        ca, cert, key = make_upstream_certs(self.work, CERT_NAMES)
        sizes = {*self.cfg.list_sizes, self.cfg.category_size, SCALEOUT_POLICY}
        for size in sizes:
            write_policy(self.work / f"policy-{size}", size)
        write_htpasswd(self.work / "htpasswd")
        return ca, cert, key

    def start_proxies(self, origin: Origin, ca: Path) -> None:
        wanted = sorted({s.proxy for c in self.comps for s in c.sides})
        balancers = [k for k in wanted if k in BALANCERS]
        # A balancer is started once its workers run (below), not by mitmdump.
        keys = sorted({k for k in wanted if k not in BALANCERS} | {
            w for b in balancers for w in BALANCERS[b]})  # fmt: skip
        if self.wanted("soak-rss"):
            keys = sorted({*keys, f"sg-{self.cfg.list_sizes[0]}"})
        for key in keys:
            if key.startswith("blocklist-"):
                write_block_list_confdir(self.work / f"conf-{key}", int(key.split("-")[1]))

        def start(key: str) -> tuple[str, Proxy | str]:
            try:
                return key, start_mitmdump(
                    key,
                    proxy_args(key, self.work),
                    origin=origin,
                    workdir=self.work,
                    upstream_ca=ca,
                )
            except RuntimeError as e:
                log = self.work / f"{key}.log"
                tail = (
                    log.read_text(errors="replace").strip().splitlines()[-3:]
                    if log.exists()
                    else []
                )
                return key, f"{e} {' / '.join(tail)}"

        # In parallel: the big lists take a while; nothing is measured until all are up.
        with ThreadPoolExecutor(max_workers=len(keys) or 1) as pool:
            for key, got in pool.map(start, keys):
                if isinstance(got, Proxy):
                    self.proxies[key] = got
                else:
                    self.failures[key] = got
                    print(f"bench: {key} did not start: {got}", file=sys.stderr)
        for key in balancers:
            try:
                workers = [self.proxies[w] for w in BALANCERS[key]]
                self.proxies[key] = start_balancer(key, workers, self.work)
            except (KeyError, RuntimeError) as e:
                self.failures[key] = f"{key}: {e}"
                print(f"bench: {key} did not start: {e}", file=sys.stderr)

    # -- measurements ----------------------------------------------------------------

    def drive(self, side: Side, proxy: Proxy, seconds: float, concurrency: int) -> LoadResult:
        return run_hey(
            self.hey,
            proxy.port,
            side.url,
            seconds=seconds,
            concurrency=concurrency,
            keepalive=side.keepalive,
            credentials=side.credentials,
            proxy_pid=proxy.pids,
            log=self.load_log,
        )

    def run_comparisons(self) -> None:
        for comp in self.comps:
            started = time.monotonic()
            conc = comp.concurrency or self.cfg.concurrency
            results = run_comparison(
                comp,
                self.proxies,
                functools.partial(self.drive, concurrency=conc),
                rounds=self.cfg.rounds,
                seconds=self.cfg.seconds,
                warmup=self.cfg.warmup,
            )
            self.rows.extend(self.comparison_rows(comp, results))
            print(f"bench: {comp.key} done in {time.monotonic() - started:.0f} s", file=sys.stderr)

    def comparison_rows(self, comp: Comparison, results: list[SideResult]) -> list[Row]:
        base = results[0]
        rows = []
        for i, res in enumerate(results[1:], 1):
            key = comp.key if len(results) == 2 else f"{comp.key}-{('mid', 'max')[i - 1]}"
            min_ratio, target = comp.min_ratio, comp.target
            if comp.per_side:
                own = comp.per_side[i - 1]
                key, min_ratio, target = f"{comp.key}-{own.suffix}", own.min_ratio, own.target
            scenario = comp.title
            problem = base.problem or res.problem
            if problem is None and (not base.runs or not res.runs):
                problem = "no runs"
            if problem is not None:
                why = self.failures.get(res.side.proxy) or self.failures.get(base.side.proxy)
                rows.append(
                    Row(
                        key,
                        scenario,
                        base.side.label,
                        res.side.label,
                        "–",
                        target,
                        NA,
                        (why or problem)[:300],
                    )
                )
                continue
            ratio = res.median_rps / base.median_rps
            pairs = [b.rps / a.rps for a, b in zip(base.runs, res.runs, strict=False)]
            ok = (min_ratio is None or ratio >= min_ratio) and (
                comp.max_ratio is None or ratio <= comp.max_ratio
            )
            verdict = INFO if min_ratio is None else (MET if ok else MISSED)
            notes = [
                f"rounds {len(res.runs)}, per-round ratio {min(pairs):.3f}–{max(pairs):.3f}",
                f"per proxy CPU-second {base.per_cpu_second:,.0f} / {res.per_cpu_second:,.0f} "
                f"req (ratio {res.per_cpu_second / base.per_cpu_second:.3f})",
                f"proxy CPU {base.proxy_cpu:.2f} / {res.proxy_cpu:.2f} core",
                f"hey CPU {base.client_cpu:.2f} / {res.client_cpu:.2f} core",
            ]
            if min(base.proxy_cpu, res.proxy_cpu) < 0.85:
                notes.append("proxy not saturated: ratio understates the difference")
            rows.append(
                Row(
                    key,
                    scenario,
                    f"{base.side.label}: {_rate(base.median_rps)} req/s",
                    f"{res.side.label}: {_rate(res.median_rps)} req/s",
                    f"{ratio:.4f}"
                    if ratio < 0.1
                    else f"{ratio:.3f}"
                    if ratio < 100
                    else f"{ratio:,.0f}",
                    target,
                    verdict,
                    "; ".join(notes),
                )
            )
        return rows

    def run_python(self, module: str, *args: str) -> dict[str, float]:
        out = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError((out.stderr or out.stdout).strip().splitlines()[-1][:300])
        result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
        return result

    def decision_rows(self) -> None:
        if not self.wanted("decide"):
            return
        size = self.cfg.category_size
        policy = self.work / f"policy-{size}" / "policy.yaml"
        target = "≥ 300,000 /s on one core"
        scenario = f"decision function alone ({size:,}-domain policy, 70/20/10 mix)"
        try:
            r = self.run_python("bench.decide_bench", str(policy), str(self.cfg.decide_seconds))
        except RuntimeError as e:
            self.rows.append(Row("decide", scenario, "–", "–", "–", target, NA, str(e)))
            return
        kinds = ", ".join(f"{k} {v:,.0f}/s" for k, v in r.items() if k != "mix")
        self.rows.append(
            Row(
                "decide",
                scenario,
                "–",
                f"{r['mix']:,.0f} decisions/s",
                "–",
                target,
                MET if r["mix"] >= 300_000 else MISSED,
                kinds,
            )
        )

    def load_rows(self) -> None:
        big = self.cfg.list_sizes[-1]
        if self.wanted("policy-load-max"):
            scenario = f"load a {big:,}-domain policy (load_policy, fresh interpreter)"
            target = "≤ 3 s (CPU time)"
            try:
                r = self.run_python(
                    "bench.load_bench", str(self.work / f"policy-{big}" / "policy.yaml")
                )
                grew = r["rss_after_mb"] - r["rss_before_mb"]
                self.rows.append(
                    Row(
                        "policy-load-max",
                        scenario,
                        "–",
                        f"{r['cpu_seconds']:.2f} s CPU",
                        "–",
                        target,
                        MET if r["cpu_seconds"] <= 3 else MISSED,
                        f"wall {r['seconds']:.2f} s; {int(r['domains']):,} entries; "
                        f"RSS +{grew:.0f} MB",
                    )
                )
            except RuntimeError as e:
                self.rows.append(
                    Row("policy-load-max", scenario, "–", "–", "–", target, NA, str(e))
                )
        if self.wanted("rss-max"):
            scenario = f"mitmdump + socialgate RSS with {big:,} domains, after load"
            target = "≤ 300 MB"
            proxy = self.proxies.get(f"sg-{big}")
            bare = self.proxies.get("bare")
            if proxy is None or proxy.proc.poll() is not None:
                why = self.failures.get(f"sg-{big}", "not running")
                self.rows.append(Row("rss-max", scenario, "–", "–", "–", target, NA, why[:300]))
                return
            rss = rss_mb(proxy.pid)
            base = f"{BARE}: {rss_mb(bare.pid):.0f} MB" if bare is not None else "–"
            self.rows.append(
                Row(
                    "rss-max",
                    scenario,
                    base,
                    f"{rss:.0f} MB",
                    "–",
                    target,
                    MET if rss <= 300 else MISSED,
                    f"listening after {proxy.ready_seconds:.1f} s (all proxies started at once)",
                )
            )

    def soak_row(self) -> None:
        if not self.wanted("soak-rss"):
            return
        key = f"sg-{self.cfg.list_sizes[0]}"
        scenario = f"memory over a {self.cfg.soak:.0f} s soak under mixed load"
        target = "RSS flat"
        proxy = self.proxies.get(key)
        if proxy is None or proxy.proc.poll() is not None:
            self.rows.append(
                Row(
                    "soak-rss",
                    scenario,
                    "–",
                    "–",
                    "–",
                    target,
                    NA,
                    self.failures.get(key, "not running")[:300],
                )
            )
            return
        self.rows.append(soak(self.hey, proxy, self.cfg.soak, self.work / f"audit-{key}.jsonl"))

    def stop_all(self) -> None:
        for proxy in self.proxies.values():
            stop(proxy.proc)


def soak(hey: str, proxy: Proxy, seconds: float, audit_log: Path) -> Row:
    """Mixed load for ``seconds`` while sampling RSS; flat = no growth after warm-up."""
    mix = [  # (url, concurrency, keep-alive)
        (PLAIN, 2, True),
        (EXEMPT_TLS, 2, True),
        (BLOCKED, 1, True),
        (PLAIN_TLS, 1, False),
        (EXEMPT_TLS, 1, False),
    ]
    before_records = _access_records(audit_log)
    procs = [
        subprocess.Popen(
            [
                hey,
                "-z",
                f"{seconds}s",
                "-c",
                str(c),
                "-cpus",
                "1",
                "-t",
                "30",
                "-x",
                f"http://127.0.0.1:{proxy.port}",
                *([] if ka else ["-disable-keepalive"]),
                url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for url, c, ka in mix
    ]
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    interval = max(0.25, seconds / 120)
    while any(p.poll() is None for p in procs):
        samples.append((time.monotonic() - started, rss_mb(proxy.pid)))
        time.sleep(interval)
    outs = [p.communicate()[0] for p in procs]
    time.sleep(1.5)  # let the audit writer drain
    social = 0
    total = 0
    for (url, _, _), out in zip(mix, outs, strict=True):
        _, statuses, _ = parse_hey(out)
        total += sum(statuses.values())
        if url in (EXEMPT_TLS, BLOCKED):
            social += sum(statuses.values())
    records = _access_records(audit_log) - before_records
    scenario = f"memory over a {seconds:.0f} s soak under mixed load"
    warm = [s for s in samples if s[0] >= seconds * 0.25]
    if len(warm) < 4:
        return Row("soak-rss", scenario, "–", "–", "–", "RSS flat", NA, "too few samples")
    q = len(warm) // 3
    early = statistics.median(r for _, r in warm[:q])
    late = statistics.median(r for _, r in warm[-q:])
    slope = statistics.linear_regression([t for t, _ in warm], [r for _, r in warm]).slope * 60
    growth = late - early
    flat = growth <= max(5.0, 0.03 * early)
    audited = records >= social  # every social response the clients got has its record
    return Row(
        "soak-rss",
        scenario,
        f"RSS after warm-up: {early:.0f} MB",
        f"RSS at end: {late:.0f} MB",
        f"{late / early:.3f}",
        "RSS flat (growth ≤ max(5 MB, 3 %))",
        MET if flat and audited else MISSED,
        f"slope {slope:+.2f} MB/min; {total:,} responses; "
        f"{records:,} audit records for {social:,} social responses"
        + ("" if audited else " (RECORDS MISSING)"),
    )


def _rate(rps: float) -> str:
    return f"{rps:,.0f}" if rps >= 100 else f"{rps:.2f}"


_ACCESS_ACTIONS = (b'"action":"request-', b'"action":"connection-')


def _access_records(path: Path) -> int:
    """Access records (allowed / blocked) in the log and its rotated files.

    A long soak rotates the log (socialgate_audit_rotate_bytes, 100 MB): counting the live
    file alone would miss most records; lifecycle and checkpoint records do not count.
    """
    count = 0
    for part in series(path):
        try:
            with part.open("rb") as f:
                count += sum(1 for line in f if any(a in line for a in _ACCESS_ACTIONS))
        except FileNotFoundError:
            continue
    return count


@contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sgbench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"bench: files kept in {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def record(rows: list[Row], cfg: Config, argv: list[str], elapsed: float) -> None:
    info = machine()
    lines = [
        BEGIN,
        f"Run of `{' '.join(['bench/run.py', *argv])}` on {info['date']}, "
        f"{elapsed / 60:.1f} minutes.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in info.items()),
        "",
        f"Each comparison: {cfg.rounds} rounds of {cfg.seconds:g} s per side, sides alternated, "
        f"`hey -c {cfg.concurrency} -cpus 1`; medians of requests per second.",
        "",
        table(rows),
        END,
    ]
    text = RESULTS.read_text() if RESULTS.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    RESULTS.write_text(head + "\n".join(lines) + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="every scenario, tiny and short")
    parser.add_argument("--soak", type=float, help="soak duration in seconds (full: 120)")
    parser.add_argument("--seconds", type=float, help="duration of one measured run")
    parser.add_argument("--rounds", type=int, help="A B rounds per comparison")
    parser.add_argument("--only", action="append", help="run only this row key (repeatable)")
    parser.add_argument("--record", action="store_true", help=f"write the table into {RESULTS}")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    cfg = SMOKE if args.smoke else FULL
    overrides = {"soak": args.soak, "seconds": args.seconds, "rounds": args.rounds}
    cfg = Config(**{**cfg.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
    only = set(args.only) if args.only else None
    started = time.monotonic()
    try:
        hey = ensure_hey()
    except BenchSetupError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    with workdir(args.keep) as work:
        bench = Bench(cfg, hey, work, only)
        ca, cert, key = bench.prepare()
        origin = start_origin(cert, key, work / "origin.log")
        try:
            bench.start_proxies(origin, ca)
            bench.run_comparisons()
            bench.load_rows()
            bench.soak_row()
            bench.stop_all()  # the decision benchmark wants a quiet machine
            bench.decision_rows()
        finally:
            bench.stop_all()
            stop(origin.proc)
    elapsed = time.monotonic() - started
    print(table(bench.rows))
    print(f"\nbench: {len(bench.rows)} rows in {elapsed:.0f} s", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in bench.rows], indent=2))
    if args.record:
        record(bench.rows, cfg, sys.argv[1:] if argv is None else argv, elapsed)
    return 1 if any(r.result == NA for r in bench.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
