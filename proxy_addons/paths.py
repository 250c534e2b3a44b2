"""Default locations, relative to the working directory: one home for every default path.

The proxy's options and every command's flags take their defaults from here, so the proxy,
`exempt`, `check`, `policy` and `audit` never disagree about where a file is.
"""

from __future__ import annotations

import os

DEFAULT_POLICY = "policies/policy.yaml"
POLICY_ENV = "SOCIALGATE_POLICY"
DEFAULT_AUDIT_LOG = "logs/audit.jsonl"
DEFAULT_ADMIN_LOG = "logs/admin-audit.jsonl"
DEFAULT_KEY = "keys/audit-hmac.key"
DEFAULT_SIGNING_KEY = "keys/audit-signing.key"
DEFAULT_PUBKEY = "keys/audit-signing.pub"
# The verification seed of forward-secure sealing, in a case folder (never on the proxy host).
DEFAULT_SEED = "keys/audit-verification.seed"


def default_policy() -> str:
    """The policy a command reads when none is given: $SOCIALGATE_POLICY, else the default."""
    return os.environ.get(POLICY_ENV) or DEFAULT_POLICY
