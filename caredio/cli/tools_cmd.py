"""``caredio trace|select|export|report``: the tools that read a run directory."""

from __future__ import annotations

import typer


def register(cli: typer.Typer) -> None:
    """Commands that read a finished (or running) run directory."""
