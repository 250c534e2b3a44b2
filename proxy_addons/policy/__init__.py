"""Policy: the model (frozen dataclasses), loading and validating the file, editing it.

`load` reads a file into a `Policy` (one module per section does the
checking), `edit` changes exemptions in place, `schedule` is the day and
time vocabulary shared by the file, the command line and every page.
"""

from proxy_addons.policy.model import (
    Access,
    Category,
    Exemption,
    Policy,
    Reminder,
    Revocation,
    Schedule,
    SiteIndex,
)

__all__ = [
    "Access",
    "Category",
    "Exemption",
    "Policy",
    "Reminder",
    "Revocation",
    "Schedule",
    "SiteIndex",
]
