"""Policy: model (frozen dataclasses), YAML loading with line marks, validation."""

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
