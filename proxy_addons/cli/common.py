"""Options and helpers shared by the `socialgate` commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from proxy_addons.paths import DEFAULT_POLICY, default_policy
from proxy_addons.policy.model import Exemption


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


def format_option[F: Callable[..., Any]](
    *choices: str, help: str | None = None
) -> Callable[[F], F]:
    """``--format`` (into ``fmt``): one of ``choices``, the first by default."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default=choices[0],
        show_default=True,
        help=help,
    )


def holder_text(ex: Exemption) -> str:
    """Who holds the exemption, in words: ``user alice`` or ``group press``."""
    return f"user {ex.user}" if ex.user is not None else f"group {ex.group}"
