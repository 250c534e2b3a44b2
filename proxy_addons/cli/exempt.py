"""`socialgate exempt` (being built)."""

from __future__ import annotations

import click


@click.group()
def exempt() -> None:
    """Not built yet."""
