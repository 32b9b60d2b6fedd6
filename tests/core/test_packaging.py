"""What the package declares about itself matches what it is.

* The Python it claims to support is the one the linter and the type checker check for
  (the code uses ``tomllib`` and ``create_task(context=...)``, both new in 3.11).
* The wheel holds the runtime package only: test doubles stay in testing/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_declared_python_is_the_one_linted_and_type_checked() -> None:
    floor = re.fullmatch(r">=\s*3\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert floor, PYPROJECT["project"]["requires-python"]
    minor = int(floor.group(1))
    assert minor >= 11, "tomllib and create_task(context=...) need Python 3.11"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == f"py3{minor}"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == f"3.{minor}"
    assert sys.version_info >= (3, minor)


def test_the_wheel_ships_no_test_doubles(tmp_path: Path) -> None:
    """Built from a clean copy of the sources (a stale build/ folder could hide a removed
    module): no FAKE server or embedder, nothing from tests/, in the installed package."""
    source = tmp_path / "src"
    # Every folder pyproject maps into the package, read from pyproject itself so a new
    # mapped folder (recipes/ was one) cannot make this copy incomplete.
    folders = set(PYPROJECT["tool"]["setuptools"]["package-dir"].values())
    for name in sorted(folders):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                            "--no-build-isolation", "--no-index", "-q", "-w",
                            str(tmp_path / "dist")],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("caredio-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        code = {name: archive.read(name) for name in names if name.endswith(".py")}
    assert "caredio/cli/llm_cmd.py" in names and "caredio/graph/sample.py" in names
    # The review app works offline: its page, script and style ship in the wheel.
    assert {"caredio/review/static/index.html", "caredio/review/static/review.js",
            "caredio/review/static/review.css"} <= set(names)
    assert not [n for n in names if n.startswith(("tests/", "testing/")) or "stub" in n]
    for name, text in code.items():
        for double in (b"StubOpenAIServer", b"HashEmbedder", b"from testing", b"import testing"):
            assert double not in text, (name, double)
