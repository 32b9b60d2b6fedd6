"""BLEnD as the tests and benchmarks find it: ``../shared/data/blend`` beside the repository
(the installed package never depends on it), and small subsets of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
BLEND_DIR = SHARED / "data" / "blend"


def blend_subset(folder: Path, country: str, questions: int) -> Path:
    """The first ``questions`` questions of one country, with its questions CSV beside them."""
    data = json.loads((BLEND_DIR / f"{country}_data.json").read_text(encoding="utf-8"))
    path = folder / f"{country}_data.json"
    path.write_text(json.dumps(dict(list(data.items())[:questions])), encoding="utf-8")
    shutil.copy(BLEND_DIR / f"{country}_questions.csv", folder / f"{country}_questions.csv")
    return path
