"""The held-out judge: the split by item id, the loop's view that never holds a judge item, the
judge scoring on its part only, and a run whose grounding and scoring never touched it.

The memory tests use the FAKE hash embedder (what is tested is which items each side sees, not
how well they are scored); the run test also uses the FAKE stub server.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from caredio.config.loading import load_settings
from caredio.config.settings import JudgeSettings, ScoringSettings
from caredio.errors import UserInputError
from caredio.memory.ingest import starter_pack
from caredio.memory.items import KnowledgeItem
from caredio.memory.judge import JUDGE, LOOP, Judge, MemoryPart, in_judge_part, loop_scorer
from caredio.memory.store import CulturalMemory
from caredio.run.job import prepare
from caredio.run.runner import start_run
from caredio.rundir.files import read_jsonl
from testing.jobs import HashEmbedder, stub_settings
from testing.stub_server import StubOpenAIServer

SPLIT = 0.3


@pytest.fixture
def memory(fake_embedder: Any) -> Any:
    memory = CulturalMemory.open(fake_embedder)
    memory.add_knowledge(starter_pack())
    yield memory
    memory.close()


def _ids(matrices: dict[str, Any]) -> set[str]:
    return {item_id for matrix in matrices.values() for item_id in matrix.ids}


def test_the_split_is_a_function_of_the_id_disjoint_and_about_the_share_asked(
        memory: Any, fake_embedder: Any) -> None:
    every = _ids(memory.matrices())
    loop_ids = _ids(MemoryPart(memory, SPLIT, LOOP).matrices())
    judge_ids = _ids(MemoryPart(memory, SPLIT, JUDGE).matrices())
    assert loop_ids | judge_ids == every and not loop_ids & judge_ids
    assert abs(len(judge_ids) / len(every) - SPLIT) < 0.06
    for culture, matrix in MemoryPart(memory, SPLIT, JUDGE).matrices().items():
        assert 0.15 < len(matrix.ids) / len(memory.matrices()[culture].ids) < 0.45, culture
    # Items added in another order to another memory: the same items go to the judge.
    items = starter_pack()
    random.Random(3).shuffle(items)
    other = CulturalMemory.open(fake_embedder)
    other.add_knowledge(items)
    assert _ids(MemoryPart(other, SPLIT, JUDGE).matrices()) == judge_ids
    # A larger split keeps every judge item of a smaller one (a threshold on a fixed number).
    assert judge_ids <= _ids(MemoryPart(memory, 0.5, JUDGE).matrices())


def test_the_loop_part_retrieves_and_grounds_without_a_judge_item(memory: Any) -> None:
    part = MemoryPart(memory, SPLIT, LOOP)
    judge_ids = {i for i in _ids(memory.matrices()) if in_judge_part(i, SPLIT)}
    for culture in ("Japan", "South Korea"):
        for topic in ("greetings_etiquette", "food_drink", "gift_giving"):
            found = part.retrieve(culture, "how people greet and give gifts", 12, topic)
            assert len(found) == 12 and not {item.id for item in found} & judge_ids
            # topic first, as the whole memory's retrieval does
            on_topic = [item.topic == topic for item in found]
            assert on_topic == sorted(on_topic, reverse=True) and on_topic[0]
            shown = part.grounding(culture, "greetings", 6, topic, "sample-1")
            assert shown and not {item.id for item in shown} & judge_ids


def test_the_judge_scores_on_its_part_and_the_loop_scorer_on_the_other(memory: Any) -> None:
    judge = Judge(memory, JudgeSettings(split=SPLIT), ScoringSettings())
    loop = loop_scorer(MemoryPart(memory, SPLIT, LOOP), ScoringSettings())
    judge_ids = _ids(judge.scorer().memory.matrices())
    assert judge_ids and all(in_judge_part(i, SPLIT) for i in judge_ids)
    assert not _ids(loop.memory.matrices()) & judge_ids
    # An answer that repeats a judge-only item word for word: the judge has that item as
    # evidence, the loop's scorer does not. (The question is worded like the item: with the
    # FAKE bag-of-words embedder only shared words make an answer relevant to a question.)
    matrix = judge.part.matrices()["Japan"]
    answer = matrix.texts[matrix.topics.index("greetings_etiquette")]
    question = f"Is it true that {answer.rstrip('.')}?"
    judged = judge.score(question, answer, "Japan", ["South Korea", "China"])
    own = loop.score(question, answer, "Japan", ["South Korea", "China"])
    assert judged.representativeness > own.representativeness
    assert judge.describe()["items"]["Japan"] == len(matrix.ids)


def test_a_judge_with_another_backend_embeds_only_the_judge_part(memory: Any) -> None:
    class OtherBackend(HashEmbedder):
        def __init__(self) -> None:
            super().__init__(dim=128)
            self.backend = "fake:other"

    judge = Judge(memory, JudgeSettings(split=SPLIT), ScoringSettings(), embedder=OtherBackend())
    scorer = judge.scorer()
    assert scorer.memory is not memory and scorer.memory.embedder.backend == "fake:other"
    assert _ids(scorer.memory.matrices()) == _ids(judge.part.matrices())
    assert judge.describe()["embedding_backend"] == "fake:other"
    score = judge.score("What do people eat?", "Rice and miso soup.", "Japan", ["China"])
    assert 0.0 <= score.objective <= 1.0
    # Knowledge added later is copied on the next score (the judge follows the memory).
    added = [KnowledgeItem(culture="Japan", text=f"Fact number {i} about tea.", topic="food_drink")
             for i in range(40)]
    memory.add_knowledge(added)
    late = {item.id for item in added if in_judge_part(item.id, SPLIT)}
    judge.score("What do people drink?", "Green tea.", "Japan", ["China"])
    assert late and late <= _ids(judge.scorer().memory.matrices())


def test_a_culture_with_nothing_on_one_side_is_refused_before_the_run(tmp_path: Path,
                                                                       fake_embedder: Any) -> None:
    path = tmp_path / "memory"
    memory = CulturalMemory.open(fake_embedder, path=path)
    text = next(t for t in (f"Atlantis fact {i}." for i in range(100))
                if not in_judge_part(KnowledgeItem(culture="Atlantis", text=t).id, 0.01))
    memory.add_knowledge([KnowledgeItem(culture="Atlantis", text=text),
                          KnowledgeItem(culture="Japan", text="We bow.")])
    memory.close()
    settings = load_settings(cultures=["Atlantis"], contrast=["Japan"], out=str(tmp_path / "runs"),
                             memory={"path": str(path), "starter_pack": False},
                             judge={"split": 0.01})
    with pytest.raises(UserInputError, match="'Atlantis' falls in the judge part"):
        prepare(settings, embedder=fake_embedder)
    assert not (tmp_path / "runs").exists()


def test_a_run_with_a_judge_never_grounds_on_its_part_and_records_its_scores(
        tmp_path: Path, fake_embedder: Any) -> None:
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path), rounds=2, judge={"split": SPLIT},
                                 topics=("food_drink", "greetings_etiquette"))
        job = prepare(settings, embedder=fake_embedder)
        try:
            # The run's own scorer reads the loop part: no judge item is evidence for it.
            assert job.scorer.memory is job.knowledge and job.knowledge is not job.memory
            scored_ids = _ids(job.scorer.memory.matrices())
            assert scored_ids and not any(in_judge_part(i, SPLIT) for i in scored_ids)
        finally:
            job.memory.close()
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    assert record["status"] == "completed"
    assert record["judge"]["split"] == SPLIT and record["judge"]["items"]["Japan"] > 0
    versions = read_jsonl(run_dir / "trajectories.jsonl")
    grounding = {i for v in versions for i in v["grounding_ids"]}
    assert grounding and not any(in_judge_part(i, SPLIT) for i in grounding)
    assert all("judge_objective" in v for v in versions)
    # The kept version's judge scores are the judge's scores of exactly that text.
    fresh = CulturalMemory.open(fake_embedder)
    fresh.add_knowledge(starter_pack())
    judge = Judge(fresh, JudgeSettings(split=SPLIT), settings.scoring)
    for line in read_jsonl(run_dir / "dataset.jsonl"):
        meta = line["metadata"]
        again = judge.score(line["messages"][0]["content"], line["messages"][1]["content"],
                            meta["culture"], meta["contrast"])
        assert meta["judge_objective"] == pytest.approx(again.objective, abs=1e-4)
        assert meta["judge_representativeness"] == pytest.approx(again.representativeness, abs=1e-4)


def test_without_a_split_the_run_is_unchanged(tmp_path: Path, fake_embedder: Any) -> None:
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path))
        job = prepare(settings, embedder=fake_embedder)
        try:
            assert job.knowledge is job.memory and job.judge is None
            assert job.scorer.memory is job.memory
        finally:
            job.memory.close()
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    assert record["judge"] is None
    for line in read_jsonl(run_dir / "dataset.jsonl"):
        assert not any(key.startswith("judge") for key in line["metadata"])
    assert np.isfinite([v["objective"] for v in read_jsonl(run_dir / "trajectories.jsonl")]).all()
