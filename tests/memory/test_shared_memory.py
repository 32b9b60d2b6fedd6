"""Runs that share one persistent memory directory: every run's accepted samples stay.

Real runs of the real graph against the FAKE stub server (its structured replies made unique
per call, so no sample is a near-duplicate of another by accident), with the FAKE hash
embedder; the memory is a real persistent Chroma directory.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from caredio.config.settings import Settings
from caredio.memory.store import CulturalMemory
from caredio.run.runner import start_run
from caredio.rundir.files import read_jsonl
from testing.jobs import stub_settings
from testing.stub_server import StubOpenAIServer


def unique_replies() -> Any:
    counter = itertools.count()

    def structured(body: dict[str, Any], name: str, value: Any) -> Any:
        n = next(counter)
        words = " ".join(f"w{n}x{i}" for i in range(6))
        # A question field gets a question: the output checks refuse anything else.
        return {key: f"Reply {n}: {words}{'?' if key == 'question' else '.'}" if isinstance(v, str) else v
                for key, v in value.items()}

    return structured


def in_memory_dir(settings: Settings, memory: Path) -> Settings:
    return settings.model_copy(update={"memory": settings.memory.model_copy(
        update={"path": str(memory)})})


def test_a_later_run_keeps_what_earlier_runs_accepted(tmp_path: Path, fake_embedder: Any) -> None:
    memory_dir = tmp_path / "memory"
    with StubOpenAIServer(structured=unique_replies()) as stub:
        for run_id in ("first", "second"):
            settings = in_memory_dir(stub_settings(stub.url, str(tmp_path / "runs"),
                                                   run_id=run_id), memory_dir)
            _, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
            assert record["status"] == "completed"
            assert len(read_jsonl(tmp_path / "runs" / run_id / "selected.jsonl")) == 2
    memory = CulturalMemory.open(fake_embedder, path=memory_dir)
    stored = memory.samples.collection.get(include=["metadatas"])
    # Both runs planned the same sample ids (culture-topic-index); both runs' samples stay.
    assert sorted(m["run_id"] for m in stored["metadatas"]) == ["first"] * 2 + ["second"] * 2
    by_run = sorted((m["run_id"], m["sample_id"]) for m in stored["metadatas"])
    assert by_run == [(run, sample) for run in ("first", "second")
                      for sample in ("china-food_drink-000", "japan-food_drink-000")]
    # What a third run's near-duplicate rule compares against: both earlier runs.
    ids, vectors = memory.samples.embeddings(exclude_run="third")
    assert len(ids) == len(set(ids)) == 4 and vectors.shape == (4, fake_embedder.dim)
