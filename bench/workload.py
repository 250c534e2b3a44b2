"""What the proxies are given: policy, category lists, htpasswd, block_list config."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import bcrypt

# Names the load generator asks for. The fake resolver sends port 80 to the plain
# origin and 443 to the TLS origin, whatever the name.
PLAIN_HOST = "www.bench.example"  # not social: passed (HTTP) or passed through (TLS)
EXEMPT_HOST = "www.linkedin.com"  # social, the bench user holds an exemption for it
BLOCKED_HOST = "www.facebook.com"  # social, no exemption
CERT_NAMES = [PLAIN_HOST, "*.bench.example", EXEMPT_HOST, "*.linkedin.com", BLOCKED_HOST]

BENCH_USER = "benchuser"
BENCH_PASSWORD = "bench-password-1"
BENCH_EXEMPTION = "EX-BENCH-001"

_TLDS = ("com", "net", "org", "io", "social", "co.uk", "de", "fr")
_WORDS = ("chat", "friend", "photo", "video", "share", "meet", "feed", "gram", "book", "link")


def bench_domain(i: int) -> str:
    """The i-th generated list entry: distinct, plausible, 15-25 characters."""
    return f"{_WORDS[i % 10]}{i:x}-{_WORDS[(i // 10) % 10]}.{_TLDS[(i // 100) % 8]}"


def write_domain_list(path: Path, count: int) -> None:
    """A category list of ``count`` generated domains (never matching the bench hosts)."""
    with path.open("w") as f:
        f.write(f"# {count} generated domains for the benchmark\n")
        for start in range(0, count, 10_000):
            f.write(
                "".join(bench_domain(i) + "\n" for i in range(start, min(start + 10_000, count)))
            )


def write_policy(directory: Path, list_size: int, *, today: dt.date | None = None) -> Path:
    """A policy in PRODUCT.md's shape: one blocked category with ``list_size`` extra domains.

    The bench user is identified by source address (127.0.0.1) and holds a full
    exemption for linkedin.com only; facebook.com stays blocked for them.
    """
    today = today or dt.date.today()
    directory.mkdir(parents=True, exist_ok=True)
    list_name = f"social-{list_size}.txt"
    write_domain_list(directory / list_name, list_size)
    granted = today - dt.timedelta(days=1)
    expires = today + dt.timedelta(days=90)
    policy = directory / "policy.yaml"
    # JSON strings are valid YAML scalars: no quoting mistakes in generated text.
    policy.write_text(
        f"""version: 1
organisation: Bench Department
contact: it-security@bench.example
policy_url: https://intranet.bench.example/social-media-policy
categories:
  social_networking:
    description: Social networking sites
    domains_files: [{list_name}]
    domains: [facebook.com, linkedin.com]
    networks: []
blocked_categories: [social_networking]
groups:
  press-office: [{BENCH_USER}]
identity:
  source_addresses:
    127.0.0.1: {BENCH_USER}
exemptions:
  - id: {BENCH_EXEMPTION}
    user: {BENCH_USER}
    sites: [linkedin.com]
    access: full
    business_case: {json.dumps("Benchmark of the exempt, intercepted and audited path")}
    approved_by: bench.admin
    granted: {granted.isoformat()}
    expires: {expires.isoformat()}
"""
    )
    return policy


def write_htpasswd(path: Path, users: int = 50) -> None:
    """bcrypt (cost 10) htpasswd with the bench user and some others, as an IT team would have."""
    lines = []
    for i in range(users):
        name = BENCH_USER if i == 0 else f"staff{i:03d}"
        password = BENCH_PASSWORD if i == 0 else f"password-{i}"
        # Other users share one hash: only the bench user's line is ever checked.
        if i <= 1:
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
        lines.append(f"{name}:{hashed}\n")
    path.write_text("".join(lines))


def write_block_list_confdir(confdir: Path, count: int) -> None:
    """mitmproxy's own way: a block_list rule per domain, in the confdir's config.yaml."""
    confdir.mkdir(parents=True, exist_ok=True)
    names = ["facebook.com", "linkedin.com", *(bench_domain(i) for i in range(count))]
    rules = [f"/~d {n.replace('.', chr(92) + '.')}$/403" for n in names]
    (confdir / "config.yaml").write_text("block_list:\n" + "".join(f"- '{r}'\n" for r in rules))
