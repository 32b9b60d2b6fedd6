"""An eval's results: accuracy per task and country with bootstrap intervals, and the plot."""

from __future__ import annotations

import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from caredio.evaluation.evaldir import PLOT, EvalData
from caredio.stats import bootstrap_mean

log = logging.getLogger(__name__)
CHANCE = {"mcq": 0.25}
TASK_NAMES = {"saq": "short answer", "mcq": "multiple choice"}


def summarize(data: EvalData) -> dict[str, Any]:
    """Accuracy per task and country (and pooled over countries), answered/failed/pending counts."""
    options = data.record.get("options") or {}
    seed = int(options.get("seed") or 0)
    outcomes = data.outcomes()
    results: dict[str, dict[str, Any]] = {}
    for task in options.get("tasks") or []:
        per_country: dict[str, Any] = {}
        pooled: list[float] = []
        for country in options.get("countries") or []:
            values = list(outcomes.get((task, country), {}).values())
            per_country[country] = bootstrap_mean(values, seed=seed).to_dict()
            pooled += values
        per_country["all"] = bootstrap_mean(pooled, seed=seed).to_dict()
        results[task] = per_country
    answers = data.answers
    failed = sum(1 for item in data.items
                 if answers.get(item["item_id"], {}).get("error"))
    answered = sum(1 for item in data.items
                   if item["item_id"] in answers and not answers[item["item_id"]].get("error"))
    unparsed = sum(1 for a in answers.values()
                   if a.get("task") == "mcq" and not a.get("error") and a.get("parsed") is None)
    return {
        "results": results,
        "chance": {task: CHANCE[task] for task in results if task in CHANCE},
        "answered": answered, "failed": failed, "pending": len(data.items) - answered - failed,
        "mcq_unparsed": unparsed,
        "tokens": {"input": sum(int(a.get("input_tokens") or 0) for a in answers.values()),
                   "output": sum(int(a.get("output_tokens") or 0) for a in answers.values())},
    }


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def write_png(fig: Any, path: Path) -> None:
    """Rendered in memory, then written to a temporary file and renamed: never half a PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getvalue())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_plot(data: EvalData) -> str | None:
    """``accuracy.png``: one bar per country and task, 95% intervals, chance for multiple choice.

    Returns the file name, or None when matplotlib is missing (the 'report' extra).
    """
    try:
        plt = pyplot()
    except ImportError:
        log.warning("no accuracy plot: matplotlib is missing (pip install 'caredio[report]')")
        return None
    results = summarize(data)["results"]
    countries = [c for c in (data.record.get("options") or {}).get("countries") or []]
    labels = [*countries, "all"]
    fig, ax = plt.subplots(figsize=(6.4, 1.0 + 0.42 * len(labels) * max(1, len(results))))
    height = 0.8 / max(1, len(results))
    colors = {"saq": "#1f77b4", "mcq": "#ff7f0e"}
    for offset, (task, per_country) in enumerate(results.items()):
        rows = [(i, per_country[label]) for i, label in enumerate(labels)
                if per_country.get(label, {}).get("n")]
        if not rows:
            continue
        ys = [i + offset * height for i, _ in rows]
        means = [r["mean"] for _, r in rows]
        errors = [[r["mean"] - r["ci_low"] for _, r in rows], [r["ci_high"] - r["mean"] for _, r in rows]]
        ax.barh(ys, means, height=height, xerr=errors, color=colors.get(task), capsize=3,
                label=f"{TASK_NAMES.get(task, task)}")
        if task in CHANCE:
            ax.axvline(CHANCE[task], color=colors.get(task), linestyle="--", linewidth=1,
                       label=f"chance ({TASK_NAMES[task]})")
    ax.set_yticks([i + height * (len(results) - 1) / 2 for i in range(len(labels))], labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy (95% bootstrap interval)")
    ax.set_title(f"{data.record.get('model', '?')}: BLEnD-style accuracy")
    ax.legend(loc="lower right", fontsize=8)
    write_png(fig, data.dir / PLOT)
    return PLOT
