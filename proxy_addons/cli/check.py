"""`socialgate check` (being built)."""

from __future__ import annotations

import click


@click.command()
def check() -> None:
    """Not built yet."""
