"""End to end: `caredio eval` on the real embedded llama.cpp server (SmolLM2-135M) with real
BLEnD files — 2 countries x 2 questions x both tasks, the distractor pool from 4 countries.
No fakes. Accuracy is not asserted (a 135M model is near chance); the records are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from caredio.evaluation.grading import grade
from caredio.rundir.files import read_jsonl
from testing.blend import BLEND_DIR
from testing.cli import in_process_cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    return in_process_cli(monkeypatch, capsys)


def test_eval_on_the_embedded_model(cli: Any, tmp_path: Path) -> None:
    files = [str(BLEND_DIR / f"{country}_data.json") for country in ("UK", "China", "Mexico", "Iran")]
    eval_dir = tmp_path / "eval"
    code, out, err = cli("eval", *files, "--countries", "UK,China", "--max-questions", "2",
                         "--out", str(eval_dir), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "completed" and result["failed"] == 0 and result["answered"] == 8
    for task in ("saq", "mcq"):
        for country in ("United Kingdom", "China"):
            estimate = result["results"][task][country]
            assert estimate["n"] == 2 and 0.0 <= estimate["ci_low"] <= estimate["mean"] <= estimate["ci_high"] <= 1.0
    items = {item["item_id"]: item for item in read_jsonl(eval_dir / "items.jsonl")}
    answers = read_jsonl(eval_dir / "answers.jsonl")
    assert sorted(a["item_id"] for a in answers) == sorted(items)
    for answer in answers:
        assert answer["reply"].strip() and answer["output_tokens"] > 0 and answer["error"] is None
        assert answer["model"] == "smollm2-135m-instruct"
        regraded = grade(items[answer["item_id"]], answer["reply"])
        assert answer["correct"] == regraded["correct"]
    record = json.loads((eval_dir / "eval.json").read_text())
    assert record["embedded_model"] is True
    assert (eval_dir / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(httpx.TransportError):  # the embedded server was stopped
        httpx.get(record["endpoint"] + "/models", timeout=2.0)
