"""Profile one proxy under one load with py-spy: what is ours, what is mitmproxy's.

    .venv/bin/python bench/profile.py blocked-http            # socialgate
    .venv/bin/python bench/profile.py blocked-http --bare     # bare mitmdump, same load
    .venv/bin/python bench/profile.py decide                  # the decision function alone

Samples every thread while it holds the GIL (py-spy, installed into the venv with
pip if missing; GIL-holding work is what limits a Python proxy's throughput)
while `hey` drives the proxy, then prints the share of samples spent inside
socialgate's code (any proxy_addons frame on the stack), the top socialgate
functions and lines by inclusive samples, and the top frames overall.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.certs import make_upstream_certs
from bench.loadgen import ensure_hey, run_hey
from bench.procs import REPO, VENV_BIN, start_mitmdump, start_origin, stop
from bench.run import BLOCKED, BLOCKED_TLS, CREDS, EXEMPT_TLS, PLAIN, PLAIN_TLS, proxy_args
from bench.workload import CERT_NAMES, write_htpasswd, write_policy

LOADS = {  # scenario -> (url, keep-alive, with proxy auth)
    "plain-http": (PLAIN, True, False),
    "https-passthrough-new-conn": (PLAIN_TLS, False, False),
    "https-intercept-exempt": (EXEMPT_TLS, True, False),
    "blocked-http": (BLOCKED, True, False),
    "blocked-https": (BLOCKED_TLS, True, False),
    "proxyauth-bcrypt": (PLAIN, True, True),
}
OURS = "proxy_addons/"


def ensure_py_spy() -> Path:
    exe = VENV_BIN / "py-spy"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
    return exe


def summarise(raw: Path, top: int) -> str:
    """Inclusive shares from py-spy's raw (collapsed) stacks."""
    total = 0
    ours = 0
    threads: Counter[str] = Counter()
    by_func: Counter[str] = Counter()
    by_line: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        # With --threads the first frame is "thread (TID): NAME".
        thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread (") else "?"
        if thread != "?":
            frames = frames[1:]
        if not frames:
            continue
        threads[thread] += count
        total += count
        leaf[frames[-1]] += count
        mine = [f for f in frames if OURS in f]
        if mine:
            ours += count
        # Inclusive: count each distinct function/line once per sample.
        for key in {f.split(" (")[0] + " (" + f.split(" (")[-1].rsplit(":", 1)[0] for f in mine}:
            by_func[key + ")"] += count
        for f in set(mine):
            by_line[f] += count
    if total == 0:
        return "no samples"

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f} %"

    out = [f"samples holding the GIL: {total}; inside socialgate code (inclusive): {pct(ours)}"]
    out += [f"  thread {k}: {pct(n)}" for k, n in threads.most_common(5)]
    out.append("")
    out.append("socialgate functions, inclusive:")
    out += [f"  {pct(n)}  {k}" for k, n in by_func.most_common(top)]
    out.append("\nsocialgate lines, inclusive:")
    out += [f"  {pct(n)}  {k}" for k, n in by_line.most_common(top)]
    out.append("\nleaf frames (self time), all code:")
    out += [f"  {pct(n)}  {k}" for k, n in leaf.most_common(top)]
    return "\n".join(out)


def profile_proxy(args: argparse.Namespace, work: Path) -> None:
    url, keepalive, auth = LOADS[args.scenario]
    ca, cert, key = make_upstream_certs(work, CERT_NAMES)
    write_policy(work / "policy-1000", 1000)
    write_htpasswd(work / "htpasswd")
    kind = args.proxy or ("bare" if args.bare else "sg-1000") + ("-auth" if auth else "")
    origin = start_origin(cert, key, work / "origin.log")
    proxy = None
    try:
        proxy = start_mitmdump(
            kind, proxy_args(kind, work), origin=origin, workdir=work, upstream_ca=ca
        )
        hey = ensure_hey()
        creds = CREDS if auth else None

        def drive(seconds: float) -> float:
            assert proxy is not None
            return run_hey(
                hey,
                proxy.port,
                url,
                seconds=seconds,
                concurrency=8,
                keepalive=keepalive,
                credentials=creds,
                proxy_pid=proxy.pid,
            ).rps

        drive(1)  # warm up
        raw = work / "profile.txt"
        spy = subprocess.Popen(
            [
                str(ensure_py_spy()),
                "record",
                "--pid",
                str(proxy.pid),
                "--duration",
                str(int(args.seconds)),
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(raw),
                "--nonblocking",
                "--gil",
                "--threads",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.5)
        rps = drive(args.seconds - 1)
        _, err = spy.communicate(timeout=60)
        if spy.returncode != 0:
            raise SystemExit(f"py-spy failed: {err.decode()[-500:]}")
        print(f"{kind}, {args.scenario}: {rps:,.0f} req/s while profiled\n")
        print(summarise(raw, args.top))
        if args.raw:
            shutil.copy(raw, args.raw)
    finally:
        if proxy is not None:
            stop(proxy.proc)
        stop(origin.proc)


def profile_decide(args: argparse.Namespace, work: Path) -> None:
    policy = write_policy(work / "policy", 100_000)
    raw = work / "profile.txt"
    cmd = [sys.executable, "-m", "bench.decide_bench", str(policy), str(args.seconds)]
    spy = [str(ensure_py_spy()), "record", "--rate", "500", "--format", "raw", "--gil"]
    subprocess.run(
        [*spy, "--output", str(raw), "--", *cmd], cwd=REPO, check=True, capture_output=True
    )
    print(summarise(raw, args.top))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=[*LOADS, "decide"])
    parser.add_argument("--bare", action="store_true", help="profile bare mitmdump instead")
    parser.add_argument("--proxy", help="proxy kind as in bench/run.py, e.g. sg-1000-interval")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw stacks here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sgprofile-") as tmp:
        if args.scenario == "decide":
            profile_decide(args, Path(tmp))
        else:
            profile_proxy(args, Path(tmp))


if __name__ == "__main__":
    main()
