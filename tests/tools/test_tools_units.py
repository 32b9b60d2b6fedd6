"""Edge cases of the run tools on small hand-made run directories (no model, no embedder).

The real-run behaviour is tested in test_tools.py; these cover what a real run rarely shows:
a trace growing while it is read, torn lines, near-duplicates inside one run, empty runs.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from caredio.cli import trace_view
from caredio.errors import UserInputError
from caredio.memory.selection import select_detailed
from caredio.rundir.reader import open_run
from caredio.tools.export import dataset_card, export, hf_rows, sharegpt_record


def turn(sample: str, round_: int, agent: str = "refiner") -> dict[str, Any]:
    return {"run_id": "r", "sample_id": sample, "round": round_, "agent": agent, "step": "response",
            "template": "refiner_response", "template_hash": "abc123", "messages": [
                {"role": "system", "content": "sys"}, {"role": "user", "content": "x" * 1000}],
            "output": '{"response": "ok"}', "parsed": {"response": "ok"}, "model": "m",
            "input_tokens": 10, "output_tokens": 5, "latency_ms": 7, "retries": 1,
            "retry_reasons": ["json_schema: rejected"], "error": None}


def line(sample: str, culture: str, objective: float, text: str) -> dict[str, Any]:
    messages = [{"role": "user", "content": f"q {text}"}, {"role": "assistant", "content": text}]
    return {"messages": messages,
            "metadata": {"sample_id": sample, "run_id": "r", "culture": culture, "topic": "t",
                         "representativeness": objective, "distinctiveness": objective,
                         "objective": objective, "attribution": {culture: 1.0}, "rounds": 1}}


def make_run(tmp_path: Path, status: str = "completed",
             dataset: list[dict[str, Any]] | None = None) -> Path:
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"run_id": "r", "status": status, "model": "m"}))
    config = {"cultures": ["A"], "memory": {"path": ":memory:"}}
    (run / "config.json").write_text(json.dumps(config))
    if dataset is not None:
        (run / "dataset.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dataset))
    return run


class FakeEmbedder:
    """Vectors by lookup, so duplicates are exactly what the test says they are."""

    backend, dim = "fake", 3

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = np.asarray([self.table[t.split("\n")[-1]] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_follow_emits_complete_lines_only_and_stops_when_the_run_ends(tmp_path: Path) -> None:
    run = make_run(tmp_path, status="running")
    trace = run / "trace.jsonl"
    trace.write_text(json.dumps(turn("s", 0)) + "\n" + json.dumps(turn("s", 1))[:20])  # torn
    seen: list[dict[str, Any]] = []
    started = threading.Event()

    def writer() -> None:
        started.wait()
        with trace.open("a") as handle:  # finish the torn line, add one more
            handle.write(json.dumps(turn("s", 1))[20:] + "\n" + json.dumps(turn("s", 2)) + "\n")
        (run / "run.json").write_text(json.dumps({"run_id": "r", "status": "completed"}))

    thread = threading.Thread(target=writer)
    thread.start()

    def emit(record: dict[str, Any]) -> None:
        seen.append(record)
        started.set()

    trace_view.follow(run, emit, poll=0.01)
    thread.join()
    assert [t["round"] for t in seen] == [0, 1, 2]


def test_word_diff_marks_removed_and_added_words() -> None:
    text = trace_view.word_diff("people bow when greeting", "people bow deeply when meeting")
    plain = text.plain
    assert "deeply" in plain and "greeting" in plain and "meeting" in plain
    styles = {plain[span.start:span.end]: str(span.style) for span in text.spans}
    assert styles["deeply"] == "green" and styles["greeting"] == "red strike"


def test_prompt_head_is_cut_and_full_is_whole() -> None:
    record = turn("s", 0)
    assert "--full shows all" in trace_view.prompt_text(record, full=False)
    assert "[system]" in trace_view.prompt_text(record, full=True)
    assert trace_view.output_text(record) == "ok"


def test_near_duplicates_within_a_run_and_across_cultures_are_never_both_selected() -> None:
    lines = [line("a1", "A", 0.9, "alpha"), line("a2", "A", 0.8, "alpha twin"),
             line("a3", "A", 0.5, "gamma"), line("b1", "B", 0.7, "beta copy of alpha")]
    embedder = FakeEmbedder({"alpha": [1, 0, 0], "alpha twin": [1, 0.01, 0], "gamma": [0, 1, 0],
                             "beta copy of alpha": [1, 0, 0.01]})
    result = select_detailed(lines, embedder, budget=3, per_culture=True)
    picked = [p.sample_id for p in result.picks]
    assert picked == ["a1", "a3"]
    assert {(s.sample_id, s.nearest_id) for s in result.skipped} == {("a2", "a1"), ("b1", "a1")}
    assert result.picks[1].nearest_id == "a1"  # why: its nearest already-picked neighbour


def test_prior_samples_from_memory_block_their_duplicates() -> None:
    lines = [line("a1", "A", 0.9, "alpha"), line("a2", "A", 0.4, "gamma")]
    embedder = FakeEmbedder({"alpha": [1, 0, 0], "gamma": [0, 1, 0]})
    prior = np.asarray([[1, 0, 0]], dtype=np.float32)
    result = select_detailed(lines, embedder, budget=2, prior_ids=["old"], prior_vectors=prior)
    assert [p.sample_id for p in result.picks] == ["a2"]
    assert result.skipped[0].nearest_id == "old"


def test_open_run_refuses_non_runs_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no such run directory"):
        open_run(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserInputError, match="not a run directory"):
        open_run(tmp_path / "file")
    run = make_run(tmp_path)
    (run / "run.json").write_text("{broken")
    with pytest.raises(UserInputError, match=r"run\.json: not valid JSON"):
        open_run(run)


def test_dataset_line_without_metadata_is_named_by_line(tmp_path: Path) -> None:
    run = make_run(tmp_path, dataset=[line("a1", "A", 0.5, "x"), {"messages": []}])
    with pytest.raises(UserInputError, match=r"dataset\.jsonl:2: metadata: missing"):
        export(run, "openai")
    assert not (run / "export").exists()


def test_report_of_a_run_without_versions_is_refused(tmp_path: Path) -> None:
    from caredio.tools.report import write_report

    run = make_run(tmp_path)
    with pytest.raises(UserInputError, match="no scored versions"):
        write_report(run)
    assert not (run / "report.html").exists()


def test_export_refuses_to_replace_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    run = make_run(tmp_path, dataset=[line("a1", "A", 0.5, "x")])
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match="not a datasets folder"):
        export(run, "hf", precious)
    assert (precious / "keep.txt").read_text() == "mine"


def test_formats_and_card_on_a_hand_made_run(tmp_path: Path) -> None:
    sample = line("a1", "A", 0.5, "x")
    sample["messages"].insert(0, {"role": "system", "content": "be an insider"})
    record = sharegpt_record(sample)
    assert record["system"] == "be an insider"
    assert [c["from"] for c in record["conversations"]] == ["human", "gpt"]
    assert json.loads(hf_rows([sample])[0]["attribution"]) == {"A": 1.0}
    run = open_run(make_run(tmp_path, dataset=[sample]))
    card = dataset_card(run, [sample], selected=False)
    assert card.startswith("---\nlicense: other")
    assert "| objective | 0.500 |" in card and "`starter`" in card


def test_word_diff_markers_for_output_without_colour() -> None:
    text = trace_view.word_diff("people bow when greeting", "people bow deeply when meeting", True)
    assert text.plain.split() == ["people", "bow", "{+deeply+}", "when", "[-greeting-]", "{+meeting+}"]
