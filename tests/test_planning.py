"""Planning a run: new cultures, long loops, and the questions a culture-topic already has.

Real runs of the real graph against the FAKE stub server, with the FAKE hash embedder: what is
under test is our planning and orchestration, not the content of the replies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from caredio.config import MAX_ROUNDS, Settings
from caredio.memory.ingest import starter_pack
from caredio.records import read_jsonl
from caredio.runner import start_run
from tests.support.jobs import stub_settings
from tests.support.stub_server import StubOpenAIServer


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
