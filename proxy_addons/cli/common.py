"""Options and helpers shared by the `socialgate` commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from proxy_addons.paths import DEFAULT_POLICY, default_policy


def policy_option[F: Callable[..., Any]](f: F) -> F:
    """``--policy PATH`` (default: $SOCIALGATE_POLICY, else policies/policy.yaml)."""
    return click.option(
        "--policy",
        "policy_path",
        default=default_policy,
        show_default="$SOCIALGATE_POLICY or " + DEFAULT_POLICY,
        metavar="PATH",
        help="Policy file.",
    )(f)
