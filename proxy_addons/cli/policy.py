"""`socialgate policy` (being built)."""

from __future__ import annotations

import click


@click.group()
def policy() -> None:
    """Not built yet."""
