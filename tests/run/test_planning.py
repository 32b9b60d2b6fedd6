"""Planning a run: new cultures, long loops, and the questions a culture-topic already has.

Real runs of the real graph against the FAKE stub server, with the FAKE hash embedder: what is
under test is our planning and orchestration, not the content of the replies.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from caredio.config.settings import MAX_ROUNDS, Settings
from caredio.memory.ingest import starter_pack
from caredio.memory.questions import QuestionBook
from caredio.run.runner import start_run
from caredio.rundir.files import read_jsonl
from testing.jobs import stub_settings
from testing.stub_server import StubOpenAIServer


def with_updates(settings: Settings, **updates: Any) -> Settings:
    """``settings`` with top-level fields, or fields of a sub-table given as a dict, replaced."""
    changed: dict[str, Any] = {}
    for key, value in updates.items():
        current = getattr(settings, key)
        changed[key] = current.model_copy(update=value) if isinstance(value, dict) else value
    return settings.model_copy(update=changed)


def test_a_culture_memory_lacks_is_elicited_then_planned_with_auto_contrast(
        tmp_path: Path, fake_embedder: Any) -> None:
    """The default configuration (contrast = auto, elicit_missing = true) on a new culture: the
    contrast set can only be ranked once the culture's knowledge is in memory."""
    starter_cultures = {item.culture for item in starter_pack()}
    assert "Brazil" not in starter_cultures
    with StubOpenAIServer() as stub:
        settings = with_updates(stub_settings(stub.url, str(tmp_path), cultures=("Brazil",)),
                                contrast="auto", memory={"elicit_missing": True})
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    assert record["status"] == "completed" and record["planned"] == record["completed"] == 1
    [spec] = read_jsonl(run_dir / "plan.jsonl")
    assert spec["culture"] == "Brazil"
    assert len(spec["contrast"]) == settings.scoring.contrast_k
    assert set(spec["contrast"]) <= starter_cultures
    elicited = [t for t in read_jsonl(run_dir / "trace.jsonl") if t["sample_id"] == "_memory"]
    assert elicited and all(t["step"] == "elicit_knowledge" for t in elicited)


def test_the_longest_loop_allowed_runs_to_its_last_round(tmp_path: Path,
                                                          fake_embedder: Any) -> None:
    """LangGraph stops a graph past its recursion limit; the limit follows max_rounds (a fixed
    200 steps failed the whole run from about 99 rounds on)."""
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path), cultures=("Japan",), rounds=MAX_ROUNDS)
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    assert record["status"] == "completed" and record["completed"] == 1, record.get("failures")
    [line] = read_jsonl(run_dir / "dataset.jsonl")
    assert line["metadata"]["rounds"] == MAX_ROUNDS
    rounds = [v["round"] for v in read_jsonl(run_dir / "trajectories.jsonl")]
    assert rounds == list(range(MAX_ROUNDS + 1))


CANDIDATES = ("How are guests greeted at the door?", "What is served first at a family meal?",
              "What does a visitor bring to a new neighbour?", "Who pours the drinks at a dinner?")


def obeys_avoid_list(body: dict[str, Any], name: str, value: Any) -> Any:
    """A FAKE model that reads the question prompt: the first candidate it was not told to
    avoid. With the same prompt it asks the same question, as a deterministic model would."""
    if name != "ExpertQuestion":
        return value
    prompt = body["messages"][-1]["content"]
    listed = prompt.split("Do not repeat these questions:")[1] if "Do not repeat" in prompt else ""
    avoided = {line.strip()[2:] for line in listed.splitlines() if line.strip().startswith("- ")}
    return {"question": next(q for q in CANDIDATES if q not in avoided)}


def drafted_questions(run_dir: Path) -> dict[str, str]:
    return {v["sample_id"]: v["question"] for v in read_jsonl(run_dir / "trajectories.jsonl")
            if v["round"] == 0}


def test_samples_of_one_topic_ask_different_questions_across_runs(
        tmp_path: Path, fake_embedder: Any) -> None:
    """Three concurrent samples of one culture and topic get three questions; a later run into
    the same memory avoids the questions that run accepted."""
    with StubOpenAIServer(structured=obeys_avoid_list) as stub:
        settings = with_updates(
            stub_settings(stub.url, str(tmp_path / "runs"), run_id="first", cultures=("Japan",),
                          samples_per_topic=3, concurrency=4),
            memory={"path": str(tmp_path / "memory")})
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
        assert record["status"] == "completed" and record["completed"] == 3
        first = drafted_questions(run_dir)
        assert sorted(first.values()) == sorted(CANDIDATES[:3])
        later = with_updates(settings, run_id="second", samples_per_topic=1)
        run_dir, record = start_run(later, lambda kind, data: None, embedder=fake_embedder)
    assert record["status"] == "completed"
    accepted = {line["messages"][0]["content"]
                for line in read_jsonl(tmp_path / "runs" / "first" / "selected.jsonl")}
    assert accepted and accepted <= set(first.values())
    expected = next(q for q in CANDIDATES if q not in accepted)
    assert drafted_questions(run_dir) == {"japan-food_drink-000": expected}
    prompts = [t["messages"][-1]["content"] for t in read_jsonl(run_dir / "trace.jsonl")
               if t["step"] == "question"]
    assert all(question in prompts[0] for question in accepted)


def test_a_resumed_run_avoids_the_questions_already_on_disk() -> None:
    book = QuestionBook().seed([
        {"sample_id": "japan-t-000", "culture": "Japan", "topic": "t", "question": "First?"},
        {"sample_id": "japan-t-001", "culture": "Japan", "topic": "t", "question": "Second?"},
        {"sample_id": "japan-u-000", "culture": "Japan", "topic": "u", "question": "Other?"},
    ])
    assert asyncio.run(book.earlier("Japan", "t", "japan-t-002")) == ["Second?", "First?"]
    assert asyncio.run(book.earlier("Japan", "t", "japan-t-000")) == ["Second?"]
