"""The hand-off to fine-tuning cannot rot: `caredio export --format trl` of a real run (the
session's demo run on the embedded model) is fed unchanged to the recipe it ships
(recipes/sft_lora.py), which trains a LoRA adapter with TRL's SFTTrainer for two steps on a tiny
randomly initialized model built in code (--smoke-test: no download, CPU). It proves the
plumbing — format, chat template, LoRA wiring, saving — not the data.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from caredio.rundir.files import read_jsonl
from testing.cli import in_process_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    return in_process_cli(monkeypatch, capsys)


@pytest.mark.e2e
def test_trl_export_trains_a_lora_adapter_with_the_shipped_recipe(cli: Any, demo_run: dict[str, Any], tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    run_dir: Path = demo_run["run_dir"]
    export_dir = tmp_path / "ft"
    code, _, err = cli("export", str(run_dir), "--format", "trl", "--out", str(export_dir))
    assert code == 0, err
    dataset = read_jsonl(run_dir / "dataset.jsonl")
    rows = read_jsonl(export_dir / "train.jsonl")
    assert len(rows) == len(dataset) > 0
    for row, line in zip(rows, dataset, strict=True):
        assert row == {"prompt": line["messages"][:-1], "completion": line["messages"][-1:]}
    recipe = export_dir / "sft_lora.py"
    assert recipe.read_text() == (ROOT / "recipes" / "sft_lora.py").read_text()
    assert "sft_lora.py --data train.jsonl" in (export_dir / "README.md").read_text()

    adapter = tmp_path / "adapter"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(recipe), "--data", str(export_dir / "train.jsonl"), "--out", str(adapter),
         "--smoke-test", "--max-steps", "2", "--batch-size", "2", "--grad-accum", "1", "--lr", "1e-3"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((adapter / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["samples"] == len(rows)
    assert len(summary["losses"]) == 2 and all(math.isfinite(float(v)) for v in summary["losses"])
    assert json.loads((adapter / "adapter_config.json").read_text())["peft_type"] == "LORA"
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    lora_b = [w for name, w in weights.items() if "lora_B" in name]
    # peft starts every lora_B at zero: non-zero values mean the optimizer really stepped.
    assert lora_b and any(abs(w).max() > 0 for w in lora_b)


def test_trl_export_refuses_to_replace_something_else(cli: Any, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"run_id": "run", "status": "completed"}))
    line = {"messages": [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": "q?"},
                         {"role": "assistant", "content": "a."}],
            "metadata": {"sample_id": "s1", "culture": "Japan", "objective": 0.5}}
    (run_dir / "dataset.jsonl").write_text(json.dumps(line) + "\n")
    code, _, err = cli("export", str(run_dir), "--format", "trl", "--out", str(tmp_path / "ok"))
    assert code == 0, err
    assert read_jsonl(tmp_path / "ok" / "train.jsonl") == [
        {"prompt": line["messages"][:2], "completion": line["messages"][2:]}]
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    code, _, err = cli("export", str(run_dir), "--format", "trl", "--out", str(other))
    assert code == 2 and "is not a trl export" in err
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
