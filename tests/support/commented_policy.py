"""A commented policy for the reload, check and exempt tests.

Dates are relative to today so the file never goes stale. The policy is
commented on purpose: edits must keep every comment.
"""

from __future__ import annotations

import datetime as dt
import pathlib

from tests.support.categories import write_social_list


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def policy_text(extra_exemptions: str = "", *, users: str = "") -> str:
    """A commented policy: a group exemption, a user one, last year's expired one."""
    t = today()
    d = dt.timedelta
    y = t.year
    return f"""\
# Test policy: every comment here must survive an edit.
version: 1
organisation: Test Department
contact: it-security@test.example   # shown on block pages
policy_url: https://intranet.test.example/social-media-policy
timezone: UTC
max_exemption_days: 90              # short, so the limit is easy to test
{users}categories:
  social_networking:
    description: Social networking sites
    domains_files: [categories/social.txt]
blocked_categories: [social_networking]
groups:
  press-office: [alice, bob]
exemptions:
  # Press office
  - id: EX-{y}-001
    group: press-office             # the whole team
    sites: [x.com, linkedin.com]
    access: full
    business_case: Press office posts official statements
    approved_by: d.smith
    granted: {t - d(10)}
    expires: {t + d(30)}            # renew before this
  # Investigators
  - id: EX-{y}-002
    user: dana
    sites: [social_networking]
    access: read-only
    business_case: Open-source research
    approved_by: d.smith
    granted: {t - d(10)}
    expires: {t + d(60)}
  - id: EX-{y - 1}-007
    user: erin
    sites: [facebook.com]
    access: full
    business_case: Campaign that has ended
    approved_by: d.smith
    granted: {t - d(100)}
    expires: {t - d(20)}
{extra_exemptions}
# Revoked entries stay in the file as evidence.
reminder:                           # code-of-conduct page
  every: 24h
  text: |
    Professional use only.
"""


def write_policy(directory: pathlib.Path, text: str | None = None) -> pathlib.Path:
    """Write ``policy.yaml`` (``policy_text()`` unless given) and its category list."""
    write_social_list(directory)
    path = directory / "policy.yaml"
    path.write_text(policy_text() if text is None else text)
    return path
