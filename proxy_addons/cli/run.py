"""`socialgate run` (being built)."""

from __future__ import annotations

import click


@click.command()
def run() -> None:
    """Not built yet."""
