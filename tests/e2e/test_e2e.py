"""End to end: the real graph on the real embedded llama.cpp server (SmolLM2-135M).

Uses the session fixture ``demo_run`` (tests/conftest.py): 2 cultures x 1 topic x 1 sample,
up to 2 refinement rounds, thresholds out of reach so every sample refines. No fakes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from caredio.memory.embeddings import DEFAULT_BACKEND
from caredio.rundir.files import read_jsonl
from caredio.rundir.formats import TRACE_FIELDS
from testing.jobs import trace_totals

pytestmark = pytest.mark.e2e


def lines(run_dir: Path, name: str) -> list[dict[str, Any]]:
    return read_jsonl(run_dir / name)


def test_run_completes_with_one_sample_per_planned_item(demo_run: dict[str, Any]) -> None:
    run_dir: Path = demo_run["run_dir"]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["planned"] == 2 and record["completed"] == 2 and record["failed"] == 0
    # The real MiniLM, run by ONNX Runtime (the default where the local extra is installed).
    assert record["embeddings"] == {"backend": DEFAULT_BACKEND, "runtime": "onnx"}
    dataset = lines(run_dir, "dataset.jsonl")
    ids = [line["metadata"]["sample_id"] for line in dataset]
    assert sorted(ids) == ["japan-greetings_etiquette-000", "south_korea-greetings_etiquette-000"]
    for line in dataset:
        roles = [m["role"] for m in line["messages"]]
        assert roles == ["user", "assistant"]
        assert all(m["content"].strip() for m in line["messages"])
        meta = line["metadata"]
        for key in ("representativeness", "distinctiveness", "objective"):
            assert 0.0 <= meta[key] <= 1.0
        # A first rewrite that stays unusable ends the loop at the draft (refinement_unusable).
        assert meta["rounds"] >= 1 or meta["stop_reason"] == "refinement_unusable"
    for name in ("config.json", "checkpoints.sqlite", "selected.jsonl", "prompts/index.json"):
        assert (run_dir / name).exists(), name


def test_every_sample_has_refinement_rounds_and_keeps_its_best_version(demo_run: dict[str, Any]) -> None:
    run_dir: Path = demo_run["run_dir"]
    versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for version in lines(run_dir, "trajectories.jsonl"):
        versions[version["sample_id"]].append(version)
    for line in lines(run_dir, "dataset.jsonl"):
        history = versions[line["metadata"]["sample_id"]]
        assert [v["round"] for v in history] == list(range(len(history)))
        assert history[0]["step"] == "initial"
        if line["metadata"]["stop_reason"] != "refinement_unusable":
            assert len(history) >= 2, "at least one refinement round"
            assert history[1]["step"] == "response"
        best = max(history, key=lambda v: v["objective"])
        assert line["metadata"]["objective"] == best["objective"]
        assert line["messages"][0]["content"] == best["question"]
        assert line["messages"][1]["content"] == best["response"]


def test_trace_has_every_agent_turn_with_its_template_hash(demo_run: dict[str, Any]) -> None:
    run_dir: Path = demo_run["run_dir"]
    trace = lines(run_dir, "trace.jsonl")
    index = json.loads((run_dir / "prompts" / "index.json").read_text())
    assert {t["agent"] for t in trace} == {"culture_expert", "contrast_critic", "refiner"}
    stop_reasons = {line["metadata"]["sample_id"]: line["metadata"]["stop_reason"]
                    for line in lines(run_dir, "dataset.jsonl")}
    for turn in trace:
        assert set(TRACE_FIELDS) <= set(turn)
        assert turn["template_hash"] == index[turn["template"]]["hash"]
        assert turn["output_tokens"] > 0
        if turn["error"] is not None:
            assert turn["error"].startswith("ModelOutputError: reply"), turn["error"]
            mine = [t for t in trace if t["sample_id"] == turn["sample_id"]]
            if turn["round"] == 0:
                # A draft that stays unusable gets a new question (the sample has one more go).
                later = mine[mine.index(turn) + 1:]
                assert turn["template"] in ("culture_expert_question", "culture_expert_answer"), turn
                assert any(t["step"] == "question" and t["error"] is None for t in later), turn
                continue
            # The 135M model may write a rewrite that stays unusable (no question, names the
            # country): that ends the sample's loop, which keeps its best usable version.
            assert turn["template"] in (
                "refiner_question", "refiner_response", "culture_expert_answer"), turn
            assert stop_reasons[turn["sample_id"]] == "refinement_unusable"
            assert turn is mine[-1]
            continue
        assert turn["parsed"], "every successful turn has a parsed, typed output"
    # Each sample: one question, and one more per draft whose answer stayed unusable; per
    # scored version a critique; two contrast answers per distinct question (a response step
    # reuses the contrast answers of its question).
    per_sample: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for turn in trace:
        per_sample[turn["sample_id"]].append(turn)
    scored: dict[str, int] = defaultdict(int)
    question_changes: dict[str, int] = defaultdict(int)
    last_question: dict[str, str] = {}
    for version in lines(run_dir, "trajectories.jsonl"):
        sample_id = version["sample_id"]
        scored[sample_id] += 1
        if last_question.get(sample_id) != version["question"]:
            question_changes[sample_id] += 1
        last_question[sample_id] = version["question"]
    for sample_id, turns in per_sample.items():
        steps = [t["step"] for t in turns if t["error"] is None]
        unanswered = [t for t in turns if t["round"] == 0 and t["step"] == "answer" and t["error"]]
        assert steps.count("question") == 1 + len(unanswered)
        assert steps.count("critique") == scored[sample_id]
        assert steps.count("contrast") == 2 * question_changes[sample_id]


def test_run_json_counts_what_the_trace_holds_and_the_server_is_stopped(
        demo_run: dict[str, Any]) -> None:
    """The fixture resumed the finished run: run.json still counts every turn on disk."""
    run_dir: Path = demo_run["run_dir"]
    record = json.loads((run_dir / "run.json").read_text())
    assert record == demo_run["record"] and record["status"] == "completed"
    totals = trace_totals(run_dir)
    assert record["tokens"] == totals["tokens"]
    first = demo_run["first_record"]
    if first["failed"] == 0:  # a finished run: its resume called nothing more
        assert record["tokens"] == first["tokens"]
        assert "turn_started" not in [kind for kind, _ in demo_run["resume_events"]]
    else:  # the resume retried the failed samples, and run.json counts both runs' turns
        assert sum(r["calls"] for r in record["tokens"].values()) > sum(r["calls"] for r in first["tokens"].values())
    assert record["retries"] == totals["retries"]
    for role in ("culture_expert", "contrast_critic", "refiner"):
        assert record["tokens"][role]["calls"] > 0
        assert record["tokens"][role]["output"] > 0
    assert record["embedded_model"] is True
    with pytest.raises(httpx.TransportError):
        httpx.get(record["endpoint"] + "/models", timeout=2.0)


def test_events_report_progress(demo_run: dict[str, Any]) -> None:
    kinds = [kind for kind, _ in demo_run["events"]]
    assert kinds[:2] == ["endpoint", "planned"]
    assert kinds.count("sample_done") + kinds.count("sample_failed") == 2
    both = kinds + [kind for kind, _ in demo_run["resume_events"]]  # a failed sample is resumed
    assert both.count("sample_done") == 2
    # One event per scored version (a sample whose first rewrite stayed unusable has one).
    assert both.count("version") == len(lines(demo_run["run_dir"], "trajectories.jsonl")) >= 2
