"""The CLI's two rich consoles: results on standard output, progress and errors on standard error.

They live in their own module so that the command modules and ``main`` (which registers them)
share them without importing each other.
"""

from __future__ import annotations

from rich.console import Console

console = Console()
err_console = Console(stderr=True)
