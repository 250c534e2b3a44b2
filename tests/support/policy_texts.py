"""Policy texts and files for the policy loading, schema, CLI and host-name tests."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from proxy_addons.policy.load import parse_policy_text
from proxy_addons.policy.model import Policy

TESTS = Path(__file__).resolve().parents[1]
DATA = TESTS / "data" / "policies"
PRODUCT_EXAMPLE = DATA / "product_example" / "policy.yaml"
UNICODE_EXAMPLE = DATA / "unicode" / "policy.yaml"
SHIPPED = TESTS.parent / "policies" / "policy.yaml"
SHIPPED_SCHEMA = TESTS.parent / "policies" / "policy.schema.json"

# A minimal valid policy; its line numbers are relied on by the invalid-case
# table (line 8 is blocked_categories, lines 10-17 the one exemption).
VALID = """\
version: 1
organisation: Org
contact: it@example.org
policy_url: https://example.org/policy
categories:
  social:
    domains: [facebook.com, x.com]
blocked_categories: [social]
exemptions:
  - id: EX-1
    user: alice
    sites: [x.com]
    access: full
    business_case: Press statements
    approved_by: d.smith
    granted: 2026-01-10
    expires: 2026-12-31
"""

SCHEDULE = """\
    schedule:
      days: [mon, tue]
      from: "08:00"
      to: "18:00"
"""  # appended to VALID: lines 18-21


def sub(old: str, new: str, base: str = VALID) -> str:
    """``base`` with the first ``old`` replaced by ``new``; ``old`` must be there."""
    assert old in base, old
    return base.replace(old, new, 1)


def write_policy(directory: Path, text: str, files: dict[str, str] | None = None) -> Path:
    """Write ``policy.yaml`` (and category files, relative to it) into ``directory``."""
    for rel, content in (files or {}).items():
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    path = directory / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# The host-name tests' policy (decision tables and properties): three social domains and an
# IPv4 network; alice is exempt for x.com (full access).
NAMES_SOCIAL = ("facebook.com", "x.com", "linkedin.com")
NAMES_NETWORK = ipaddress.IPv4Network("192.0.2.0/24")
NAMES_POLICY = f"""\
version: 1
organisation: Example
contact: it@example.org
policy_url: https://intranet.example.org/policy
categories:
  social_networking:
    description: Social
    domains: [{", ".join(NAMES_SOCIAL)}]
    networks: [{NAMES_NETWORK}]
blocked_categories: [social_networking]
exemptions:
  - id: EX-1
    user: alice
    sites: [x.com]
    access: full
    business_case: Press office posts official statements
    approved_by: d.smith
    granted: 2026-01-10
    expires: 2026-12-31
"""
NAMES_NOON = dt.datetime(2026, 3, 11, 12, tzinfo=dt.UTC)  # inside EX-1's validity


def names_policy() -> Policy:
    return parse_policy_text(NAMES_POLICY, "policy.yaml", lambda p: b"")
