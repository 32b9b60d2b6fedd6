"""Eval directories in ``caredio compare``: accuracy per task and country, paired by item.

Units are items, paired only when both evals asked the very same prompt with the same answer
key (the item id plus a hash of what was asked and what counts as right).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from caredio.evaluation.evaldir import is_eval_dir, open_eval
from caredio.tools.compare import ALL, Comparison, Measured, paired_verdicts


def _item_key(item: dict[str, Any]) -> str:
    """An item id plus a hash of what was asked and what counts as right: pairs only identical items."""
    asked = json.dumps([item.get("messages"), item.get("gold"), item.get("answer")], sort_keys=True)
    return f"{item['item_id']}#{hashlib.sha256(asked.encode()).hexdigest()[:10]}"


class EvalKind:
    name = "eval"
    ordered = False
    unbounded: tuple[str, ...] = ()

    def accepts(self, path: Path) -> bool:
        return is_eval_dir(path)

    def load(self, path: Path) -> Measured:
        data = open_eval(path)
        items = {item["item_id"]: item for item in data.items}
        values: dict[tuple[str, str], dict[str, float]] = {}
        for (task, country), outcomes in sorted(data.outcomes().items()):
            keyed = {_item_key(items[item_id]): value for item_id, value in outcomes.items()}
            values[(f"{task} accuracy", country)] = keyed
            values.setdefault((f"{task} accuracy", ALL), {}).update(keyed)
        notes = []
        leakage = data.record.get("leakage") or {}
        if not leakage.get("checked"):
            notes.append("no leakage check (eval ran without --exclude-memory or --against)")
        elif leakage.get("kept"):
            notes.append(f"{leakage.get('questions_found', 0)} questions found in memory were kept "
                         "(--keep-leaked)")
        if data.record.get("status") != "completed":
            notes.append(f"status {data.record.get('status')}: not every item was answered")
        return Measured(data.dir, data.dir.name, self.name, values, str(data.record.get("model", "")), notes)

    def notes(self, measured: list[Measured]) -> None:
        """Evals note their own differences (leakage check, status) when loaded."""

    def verdicts(self, comparison: Comparison) -> list[str]:
        return paired_verdicts(comparison)


EVALS = EvalKind()
