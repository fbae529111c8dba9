"""Commands of the ringmaster CLI (filled in by the owning issue)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ringmaster CLI."""

    @app.command(hidden=True)
    def placeholder() -> None:
        """Placeholder until the owning issue lands."""
