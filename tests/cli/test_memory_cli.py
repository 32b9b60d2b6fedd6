"""`caredio memory ingest|stats` and `caredio score` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testing.blend import blend_subset
from testing.cli import in_process_cli

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


STARTER = {"Japan", "South Korea", "China", "Germany", "United States"}


def test_stats_json(cli: Any, memory: Path) -> None:
    code, out, _ = cli("memory", "stats", "--memory", str(memory), "--json")
    stats = json.loads(out)
    assert code == 0
    # The starter pack is loaded as `caredio run` loads it (memory.starter_pack).
    assert set(stats["cultures"]) == {"Iran"} | STARTER
    assert stats["knowledge_items"] == sum(c["items"] for c in stats["cultures"].values())
    assert stats["cultures"]["Iran"]["sources"] == {"blend": stats["cultures"]["Iran"]["items"]}
    assert set(stats["cultures"]["United States"]["sources"]) == {"blend", "starter"}
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
        assert set(row["attribution"]) == {"Iran"} | STARTER
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


def test_a_blank_response_is_scored_zero_and_flagged_not_refused(cli: Any, memory: Path, tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"culture": "Iran", "question": "What is eaten at breakfast?",
                                   "response": "Flat bread with feta cheese and sweet black tea."}) + "\n"
                       + json.dumps({"culture": "Iran", "question": "What is eaten at breakfast?",
                                     "response": "  "}) + "\n", encoding="utf-8")
    code, out, err = cli("score", str(samples), "--memory", str(memory), "--contrast", "United States", "--json")
    assert code == 0, err
    honest, blank = (json.loads(line) for line in out.splitlines())
    assert honest["objective"] > 0 and honest["flags"] == []
    assert (blank["representativeness"], blank["distinctiveness"], blank["objective"]) == (0, 0, 0)
    assert blank["flags"] == ["blank"]
    assert "1 sample(s) with a blank response" in err


def test_score_works_on_a_fresh_memory_with_the_starter_pack(cli: Any, tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"culture": "Japan", "question": "How do people greet each other?",
                                   "response": "People bow; a deeper bow shows more respect."}) + "\n",
                       encoding="utf-8")
    code, out, err = cli("score", str(samples), "--memory", str(tmp_path / "fresh"), "--json")
    assert code == 0, err
    row = json.loads(out)
    assert row["culture"] == "Japan" and len(row["contrast"]) == 2 and row["objective"] > 0


@pytest.mark.parametrize("contrast", ["Iran", "", " , "])
def test_score_refuses_a_contrast_without_a_rival(cli: Any, memory: Path, tmp_path: Path, contrast: str) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"culture": "Iran", "response": "Rice with saffron."}) + "\n", encoding="utf-8")
    code, out, err = cli("score", str(samples), "--memory", str(memory), "--contrast", contrast, "--json")
    assert code == 2 and out == ""
    assert "contrast" in err and len(err.strip().splitlines()) == 1


def test_score_reproduces_the_runs_scores_with_its_evidence(cli: Any, demo_run: dict[str, Any],
                                                            tmp_path: Path) -> None:
    """The loop scores with the contrast answers and without the items its agents saw: given
    the run's trajectories, `caredio score` says exactly what the run said."""
    from caredio.rundir.files import read_jsonl

    run_dir, memory = demo_run["run_dir"], demo_run["memory"]
    versions = [v for v in read_jsonl(run_dir / "trajectories.jsonl") if "contrast_answers" in v]
    assert versions and all(v["grounding_ids"] for v in versions)
    code, out, err = cli("score", str(run_dir / "trajectories.jsonl"), "--memory", str(memory), "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(versions)
    for row, version in zip(rows, versions, strict=True):
        assert row["loop_evidence"] is True
        for key in ("representativeness", "distinctiveness", "objective"):
            assert row[key] == pytest.approx(version[key], abs=1e-3), (key, version["sample_id"])
    # Dataset lines need --run for the same evidence; without it D is memory-only.
    dataset = run_dir / "dataset.jsonl"
    code, out, err = cli("score", str(dataset), "--memory", str(memory), "--run", str(run_dir), "--json")
    assert code == 0, err
    lines = list(read_jsonl(dataset))
    for row, line in zip((json.loads(x) for x in out.splitlines()), lines, strict=True):
        assert row["objective"] == pytest.approx(line["metadata"]["objective"], abs=1e-3)
