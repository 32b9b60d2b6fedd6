"""The real ``caredio`` entry point, run in the test's own process."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest


def in_process_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run `caredio ARGS` in process through the real entry point; returns (code, stdout, stderr)."""
    from caredio.cli.main import app

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["caredio", *args])
        code = 0
        try:
            app()
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run
