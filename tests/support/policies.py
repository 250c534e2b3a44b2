"""Policies for the tests, dated relative to today so they never go stale."""

from __future__ import annotations

import datetime as dt
import pathlib

import bcrypt

from tests.support.categories import write_social_list

USERS = ["alice", "bob", "carol", "dana", "erin", "frank", "gina"]
PASSWORD = "Corr3ct-Horse-Battery"
KIOSK_IP = "127.0.0.2"


def write_policy(directory: pathlib.Path, *, today: dt.date | None = None) -> pathlib.Path:
    """The integration-test policy: one user per reason an exemption can fail."""
    today = today or dt.datetime.now(dt.UTC).date()
    d = dt.timedelta
    away = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][(today.weekday() + 3) % 7]
    write_social_list(directory)
    text = f"""\
version: 1
organisation: Test Department
contact: it-security@test.example
policy_url: https://intranet.test.example/social-media-policy
apply_url: https://intranet.test.example/exemptions
categories:
  social_networking:
    description: Social networking sites
    domains_files: [categories/social.txt]
    domains: [mastodon.social]
    networks: [192.0.2.0/24]
blocked_categories: [social_networking]
groups:
  press-office: [alice, bob]
identity:
  source_addresses:
    {KIOSK_IP}: kiosk-reception
exemptions:
  - id: EX-2026-001
    group: press-office
    sites: [x.com, linkedin.com]
    access: full
    business_case: Press office posts official statements
    approved_by: d.smith
    granted: {today - d(30)}
    expires: {today + d(30)}
  - id: EX-2026-002
    user: dana
    sites: [social_networking]
    access: read-only
    business_case: Open-source research for investigations
    approved_by: d.smith
    granted: {today - d(30)}
    expires: {today + d(30)}
  - id: EX-2026-003
    user: erin
    sites: [facebook.com]
    access: full
    business_case: Campaign that has ended
    approved_by: d.smith
    granted: {today - d(60)}
    expires: {today - d(2)}
  - id: EX-2026-004
    user: frank
    sites: [facebook.com]
    access: full
    business_case: Campaign that starts soon
    approved_by: d.smith
    granted: {today + d(2)}
    expires: {today + d(30)}
  - id: EX-2026-005
    user: gina
    sites: [facebook.com]
    access: full
    business_case: Weekly community hour
    approved_by: d.smith
    granted: {today - d(30)}
    expires: {today + d(30)}
    schedule:
      days: [{away}]
      from: "00:00"
      to: "23:59"
      timezone: UTC
  - id: EX-2026-006
    user: kiosk-reception
    sites: [linkedin.com]
    access: full
    business_case: Reception screen shows the company page
    approved_by: d.smith
    granted: {today - d(30)}
    expires: {today + d(30)}
reminder:
  every: 24h
  text: |
    Professional use only. Do not bring the organisation into disrepute.
"""
    path = directory / "policy.yaml"
    path.write_text(text)
    return path


def write_htpasswd(directory: pathlib.Path, rounds: int = 4) -> pathlib.Path:
    lines = []
    for user in USERS:
        h = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds)).decode()
        lines.append(f"{user}:{h}")
    path = directory / "htpasswd"
    path.write_text("\n".join(lines) + "\n")
    return path
