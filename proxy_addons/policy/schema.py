"""What a policy file may contain: the keys of each mapping, and the shapes of names.

``policies/policy.schema.json`` must agree with these (tests/test_policy_schema.py).
"""

from __future__ import annotations

import re

TOP_KEYS = (
    "version",
    "organisation",
    "contact",
    "policy_url",
    "apply_url",
    "timezone",
    "max_exemption_days",
    "users",
    "categories",
    "blocked_categories",
    "groups",
    "identity",
    "exemptions",
    "reminder",
)
TOP_REQUIRED = (
    "version",
    "organisation",
    "contact",
    "policy_url",
    "categories",
    "blocked_categories",
)
CATEGORY_KEYS = ("description", "domains_files", "domains", "networks")
IDENTITY_KEYS = ("source_addresses",)
EXEMPTION_KEYS = (
    "id",
    "user",
    "group",
    "sites",
    "access",
    "business_case",
    "approved_by",
    "ticket",
    "granted",
    "expires",
    "schedule",
    "revoked",
)
EXEMPTION_REQUIRED = ("id", "sites", "access", "business_case", "approved_by", "granted", "expires")
SCHEDULE_KEYS = ("days", "from", "to", "timezone")
SCHEDULE_REQUIRED = ("days", "from", "to")
REVOKED_KEYS = ("date", "by", "reason")
REMINDER_KEYS = ("every", "text")

# Category names never contain a dot, so an exemption site is unambiguously
# either a category name or a domain.
CATEGORY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
EXEMPTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
# Account names as proxyauth reports them (alice, EXAMPLE\alice, alice@example.org).
ACCOUNT_NAME = re.compile(r"^[^\s\x00-\x1f\x7f,]{1,256}$")
