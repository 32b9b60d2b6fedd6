"""Small BLEnD-shaped files for the eval tests (made up, in BLEnD's exact layout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Answers = list[tuple[list[str], int]]  # (English variants, annotator count)


def blend_entry(question: str, answers: Answers, idks: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "question": question,
        "en_question": question,
        "annotations": [{"answers": list(v), "en_answers": list(v), "count": c} for v, c in answers],
        "idks": idks or {"idk": 0, "no-answer": 0, "not-applicable": 0},
    }


def write_blend(directory: Path, stem: str, entries: dict[str, dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}_data.json"
    path.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    return path


# One food question asked of six countries. Alpha's majority answer is "rice"; the others'
# answers test every distractor rule (see test_eval_units.test_mcq_distractors_follow_blend_rules).
SNACK = "What is a common snack for kids in {country}?"
COUNTRY_ANSWERS: dict[str, Answers] = {
    "Alpha": [(["rice"], 3), (["noodles"], 1)],
    "Beta": [(["noodles"], 3), (["bread", "breads"], 2)],  # noodles: Alpha gave it -> bread
    "Gamma": [(["fried rice"], 4), (["pasta"], 1)],  # shares "rice"; pasta has 1 vote -> none
    "Delta": [(["tortilla"], 2)],
    "Epsilon": [(["breads"], 3), (["injera"], 2)],  # breads = Beta's bread -> injera
    "Zeta": [(["beans"], 5)],
}


def snack_files(directory: Path, extra: dict[str, dict[str, dict[str, Any]]] | None = None) -> list[Path]:
    """Six countries' files with question Q1 (above) and whatever ``extra`` adds per country."""
    paths = []
    for country, answers in COUNTRY_ANSWERS.items():
        entries = {"Q1": blend_entry(SNACK.format(country=country), answers)}
        entries.update((extra or {}).get(country, {}))
        paths.append(write_blend(directory, country, entries))
    return paths
