"""What the package declares about itself matches what it is.

* The Python it claims to support is the one the linter and the type checker check for
  (the code uses ``tomllib`` and ``create_task(context=...)``, both new in 3.11).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_declared_python_is_the_one_linted_and_type_checked() -> None:
    floor = re.fullmatch(r">=\s*3\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert floor, PYPROJECT["project"]["requires-python"]
    minor = int(floor.group(1))
    assert minor >= 11, "tomllib and create_task(context=...) need Python 3.11"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == f"py3{minor}"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == f"3.{minor}"
    assert sys.version_info >= (3, minor)
