"""Device-side commands: login, sync, status (filled in by the client work)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the device-side commands to ``app``."""
