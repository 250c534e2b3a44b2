"""`socialgate audit`: verify the trail, search it, report on it.

Commands come from their own modules so the integrity and investigation
tools can grow apart: `audit_verify.py`, `audit_purge.py`, `audit_investigate.py` and
`audit_drift.py`.
"""

from __future__ import annotations

import click

from proxy_addons.cli.audit_drift import register as register_drift
from proxy_addons.cli.audit_investigate import register as register_investigate
from proxy_addons.cli.audit_purge import register as register_purge
from proxy_addons.cli.audit_verify import register as register_verify


@click.group()
def audit() -> None:
    """Verify, search and report on the audit trail."""


register_verify(audit)
register_investigate(audit)
register_drift(audit)
register_purge(audit)
