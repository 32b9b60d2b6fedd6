"""`caredio memory ingest --from-review`: what reviewers wrote or confirmed becomes knowledge
(source human, weight 1.0, reviewer and run recorded), rejected answers are recorded so later
selections avoid near-copies, and the next run's culture expert is grounded on the human items.

All on the FAKE stub server with the FAKE hash embedder (similar = shares words): the edited
answer is written with the words of the topic's description, as a reviewer's answer on the
topic shares its meaning, so retrieval by the topic finds it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from caredio.review.session import ReviewSession
from testing.cli import in_process_cli
from testing.review import QUESTIONS, make_run

EDITED = ("Everyday eating habits: staple foods, typical dishes, beverages, cooking methods and "
          "habits at home. Rice, miso soup and grilled fish are typical dishes.")


def test_reviewed_answers_become_human_knowledge_that_grounds_the_next_run(
        tmp_path: Path, shared_fake_embedder: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "runs", run_id="first")  # an ephemeral memory: gone with the run
    session = ReviewSession(run, "ana")
    session.edit("japan-food_drink-000", QUESTIONS["food"], EDITED)
    session.decide("china-food_drink-000", "accept")
    session.decide("japan-greetings_etiquette-000", "reject", "stereotype or offensive")
    memory = tmp_path / "memory"
    cli = in_process_cli(monkeypatch, capsys)
    code, out, err = cli("memory", "ingest", "--from-review", str(run), "--memory", str(memory))
    assert code == 0, err
    assert "2 human knowledge items (1 edited, 1 confirmed), 2 new; 1 rejected answers" in out

    from caredio.memory.store import CulturalMemory

    store = CulturalMemory.open(shared_fake_embedder, path=memory)
    try:
        got = store.knowledge.get(include=["documents", "metadatas"])
        human = {text: meta for text, meta in zip(got["documents"], got["metadatas"], strict=True)
                 if meta["source"] == "human"}
        claim = f"{QUESTIONS['food']} — {EDITED}"
        assert human[claim] == {"culture": "Japan", "topic": "food_drink", "weight": 1.0, "source": "human",
                                "reviewer": "ana", "run_id": "first"}
        samples = store.samples.collection.get(include=["metadatas"])
        reviewed = {meta["sample_id"]: meta for meta in samples["metadatas"]}
        assert reviewed["japan-greetings_etiquette-000"]["reviewed"] == "reject"
        assert reviewed["japan-greetings_etiquette-000"]["reason"] == "stereotype or offensive"
        # The culture expert is told the accepted question was asked, not the rejected one.
        assert store.samples.questions("Japan", "food_drink", 20) == [QUESTIONS["food"]]
        assert store.samples.questions("Japan", "greetings_etiquette", 20) == []
    finally:
        store.close()

    # A later selection never picks a near-copy of the rejected answer (nor of the kept ones).
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "review.jsonl").unlink()
    config = json.loads((copy / "config.json").read_text())
    config["memory"]["path"] = str(memory)
    (copy / "config.json").write_text(json.dumps(config))
    record = json.loads((copy / "run.json").read_text())  # another run: the first's samples are prior
    (copy / "run.json").write_text(json.dumps({**record, "run_id": "copy"}))
    from caredio.tools.export import select_run

    result = select_run(copy, budget=10, embedder=shared_fake_embedder)
    skipped = {s.sample_id: s.nearest_id for s in result.skipped}
    assert skipped["japan-greetings_etiquette-000"] == "first/japan-greetings_etiquette-000"
    assert "china-greetings_etiquette-000" in {p.sample_id for p in result.picks}  # never reviewed

    # The next run on that memory: its culture expert's prompt holds the human item.
    make_run(tmp_path / "runs", run_id="next", memory=str(memory), cultures=("Japan",), samples_per_topic=2)
    turns = [json.loads(line) for line in (tmp_path / "runs" / "next" / "trace.jsonl").read_text().splitlines()]
    prompts = [json.dumps(t["messages"], ensure_ascii=False) for t in turns if t["agent"] == "culture_expert"]
    assert any(EDITED in prompt for prompt in prompts)


def test_from_review_without_decisions_is_bad_input_and_writes_nothing(
        stub_run: Path, shared_fake_embedder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli = in_process_cli(monkeypatch, capsys)
    code, _, err = cli("memory", "ingest", "--from-review", str(stub_run), "--memory", str(tmp_path / "m"))
    assert code == 2 and "review.jsonl holds no decision yet" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()
    ReviewSession(stub_run, "ana").decide(ReviewSession(stub_run, "ana").entries[0].sample_id, "accept")
    code, _, err = cli("memory", "ingest", "--from-review", str(stub_run))
    assert code == 2 and "used an ephemeral memory; name the memory" in err
    code, _, err = cli("memory", "ingest")
    assert code == 2 and "give knowledge FILE... or --from-review RUN_DIR" in err
