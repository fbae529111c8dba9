"""``ringmaster sandbox`` commands (filled in by the emulator issue)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ringmaster CLI."""

    @app.command(hidden=True)
    def placeholder() -> None:
        """Placeholder until the owning issue lands."""
