"""Run mypy on the package as it is installed: ``caredio`` with agents/, graph/, memory/, recipes/ and
prompts/ mounted inside it (setuptools' package-dir mapping, which mypy cannot follow).

Usage: python scripts/typecheck.py [extra mypy args]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MOUNTS = {"agents": "agents", "graph": "graph", "memory": "memory", "prompts": "prompts",
          "recipes": "recipes"}


def main() -> int:
    tree = ROOT / "build" / "typecheck"
    package = tree / "caredio"
    package.mkdir(parents=True, exist_ok=True)
    for entry in (ROOT / "caredio").iterdir():
        link = package / entry.name
        if not link.exists():
            link.symlink_to(entry)
    for name, folder in MOUNTS.items():
        link = package / name
        if not link.exists():
            link.symlink_to(ROOT / folder)
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
               "-p", "caredio", *sys.argv[1:]]
    return subprocess.call(command, cwd=tree)


if __name__ == "__main__":
    sys.exit(main())
