"""`caredio memory ingest|stats` and `caredio score` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import in_process_cli
from tests.test_blend import blend_subset

SCORE_KEYS = {"culture", "representativeness", "distinctiveness", "objective", "attribution",
              "predicted_culture"}


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], embedder: Any) -> Any:
    """Run `caredio ARGS` in process; returns (exit code, stdout, stderr)."""
    return in_process_cli(monkeypatch, capsys)


@pytest.fixture
def memory(cli: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "blend"
    folder.mkdir()
    files = [str(blend_subset(folder, country, 12)) for country in ("US", "Iran")]
    path = tmp_path / "memory"
    code, out, err = cli("memory", "ingest", *files, "--format", "blend", "--memory", str(path))
    assert code == 0, err
    assert "United States" in out and "Iran" in out and "new" in out
    code, out, err = cli("memory", "ingest", files[0], "--memory", str(path))
    assert code == 0 and " 0 new" in out, out + err
    return path


def test_stats_json(cli: Any, memory: Path) -> None:
    code, out, _ = cli("memory", "stats", "--memory", str(memory), "--json")
    stats = json.loads(out)
    assert code == 0
    assert set(stats["cultures"]) == {"United States", "Iran"}
    assert stats["knowledge_items"] == sum(c["items"] for c in stats["cultures"].values())
    assert stats["cultures"]["Iran"]["sources"] == {"blend": stats["cultures"]["Iran"]["items"]}
    code, out, _ = cli("memory", "stats", "--memory", str(memory))
    assert code == 0 and "Iran" in out


def test_score_json_generic_and_dataset_lines(cli: Any, memory: Path, tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    lines = [
        {"culture": "Iran", "question": "What is eaten at breakfast?", "response": "Bread, cheese, tea.",
         "id": "a"},
        {"messages": [{"role": "system", "content": "x"},
                      {"role": "user", "content": "What is a popular sport?"},
                      {"role": "assistant", "content": "American football and baseball."}],
         "metadata": {"culture": "US", "sample_id": "b"}},
        {"culture": "United States", "response": "Thanksgiving turkey with family."},
    ]
    samples.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    code, out, err = cli("score", str(samples), "--memory", str(memory), "--contrast", "all", "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "line-3"]
    assert [r["culture"] for r in rows] == ["Iran", "United States", "United States"]
    for row in rows:
        assert set(row) >= SCORE_KEYS
        assert set(row["attribution"]) == {"Iran", "United States"}
        assert sum(row["attribution"].values()) == pytest.approx(1.0, abs=1e-3)
        assert row["predicted_culture"] in row["attribution"]
        for key in ("representativeness", "distinctiveness", "objective"):
            assert 0.0 <= row[key] <= 1.0

    code, out, err = cli("score", str(samples), "--memory", str(memory), "--contrast", "Iran,US")
    assert code == 0, err
    assert "Per culture means" in out and "United States" in out


def test_score_bad_input(cli: Any, memory: Path, tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text('{"culture": "Iran", "response": "Rice."}\n{"culture": "Iran"}\n', encoding="utf-8")
    code, out, err = cli("score", str(samples), "--memory", str(memory), "--json")
    assert code == 2 and "samples.jsonl:2" in err and "response" in err and out == ""
    samples.write_text('{"culture": "Atlantis", "response": "Rice."}\n', encoding="utf-8")
    code, out, err = cli("score", str(samples), "--memory", str(memory), "--json")
    assert code == 2 and "Atlantis" in err and out == ""


def test_malformed_blend_file_leaves_memory_unchanged(cli: Any, memory: Path, tmp_path: Path) -> None:
    before = json.loads(cli("memory", "stats", "--memory", str(memory), "--json")[1])
    folder = tmp_path / "bad"
    folder.mkdir()
    path = blend_subset(folder, "Spain", 12)
    data = json.loads(path.read_text(encoding="utf-8"))
    last = [qid for qid, entry in data.items() if entry["annotations"]][-1]
    data[last]["annotations"][0]["count"] = -1  # the file's last answer: nothing may go in
    path.write_text(json.dumps(data), encoding="utf-8")
    code, _, err = cli("memory", "ingest", str(path), "--memory", str(memory))
    assert code == 2 and "Spain_data.json" in err and "count" in err
    assert json.loads(cli("memory", "stats", "--memory", str(memory), "--json")[1]) == before
