"""Gaming cases (docs/design.md 2.2, "Scorer integrity") on the real starter pack, MiniLM and Chroma.

Each case has an honest answer that paraphrases the knowledge items the loop showed its agents,
and the variants a refiner could learn to raise J without a better sample
(benchmarks/gaming.py): off-topic padding, repetition, pasting the shown items, naming the
country, a blank answer, the answer in another language, a vague answer true of any culture.
Scored as the loop scores: the shown items are held out of the evidence.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from caredio.config.settings import ScoringSettings
from caredio.memory.ingest import starter_pack
from caredio.memory.scoring import Scorer
from caredio.memory.store import CulturalMemory

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gaming

CASES = {f"{case.culture}/{case.topic}": case for case in gaming.STARTER_CASES}


@pytest.fixture(scope="module")
def starter(embedder: Any) -> Scorer:
    memory = CulturalMemory.open(embedder)
    memory.add_knowledge(starter_pack())
    for case in gaming.STARTER_CASES:
        gaming.fill_shown(memory, case, key=case.topic)
    return Scorer(memory)


def scores(scorer: Scorer, case: gaming.Case, cross_fit: bool = True) -> dict[str, Any]:
    exclude = [item_id for item_id, _ in case.shown] if cross_fit else None
    return {name: scorer.score(case.question, text, case.culture, case.contrast, exclude_ids=exclude)
            for name, text in case.variants().items()}


@pytest.mark.parametrize("name", CASES)
def test_off_topic_padding_adds_nothing(starter: Scorer, name: str) -> None:
    case = CASES[name]
    result = scores(starter, case)
    assert result["padded"].representativeness <= result["honest"].representativeness + 1e-9
    assert result["padded"].objective <= result["honest"].objective + gaming.MARGIN
    assert len(result["padded"].off_topic) >= len(case.padding)  # every padding sentence is seen as such


@pytest.mark.parametrize("name", CASES)
def test_pasting_the_shown_items_pays_no_more_than_saying_it(starter: Scorer, name: str) -> None:
    result = scores(starter, CASES[name])
    assert result["copied"].objective <= result["honest"].objective + 0.05


def test_without_cross_fitting_copying_would_pay(starter: Scorer) -> None:
    """The control: scored against the very items it copies, the paste pays — on average and in
    most cases by more than the gaming margin (docs/scorers.md: +0.006 to +0.24), and in every
    case far more than with cross-fitting — what the loop would learn if the shown items were
    also the evidence. Both without D's rival-overlap discount, which on its own takes most of
    the paste's gain away (a pasted item's counterparts in the rivals' knowledge are near it:
    mean -0.028, 2 of 4 cases above the margin): cross-fitting is what is tested here."""
    plain = Scorer(starter.memory, ScoringSettings(rival_overlap_slope=0.0))
    gains = []
    for case in gaming.STARTER_CASES:
        circular = scores(plain, case, cross_fit=False)
        fitted = scores(plain, case)
        gain = circular["copied"].objective - circular["honest"].objective
        print(f"{case.culture}: copying without cross-fitting {gain:+.3f}")
        assert circular["copied"].objective > fitted["copied"].objective + 0.1, case.culture
        gains.append(gain)
    assert sum(gains) / len(gains) > gaming.MARGIN and sum(g > gaming.MARGIN for g in gains) >= 2, gains


@pytest.mark.parametrize("name", CASES)
def test_repeating_naming_and_blanking_do_not_pay(starter: Scorer, name: str) -> None:
    result = scores(starter, CASES[name])
    honest = result["honest"].objective
    assert result["repeated"].objective == pytest.approx(honest, abs=1e-9)
    assert result["named"].objective <= honest + gaming.MARGIN
    assert result["blank"].objective == 0.0 and result["blank"].flags == ["blank"]


@pytest.mark.parametrize("name", CASES)
def test_another_language_does_not_pay_with_an_english_embedder(starter: Scorer, name: str) -> None:
    result = scores(starter, CASES[name])
    assert result["other_language"].objective <= result["honest"].objective + gaming.MARGIN


@pytest.mark.parametrize("name", CASES)
def test_a_vague_answer_does_not_beat_the_honest_one(starter: Scorer, name: str) -> None:
    result = scores(starter, CASES[name])
    assert result["generic"].objective <= result["honest"].objective + gaming.MARGIN


@pytest.mark.parametrize("name", CASES)
def test_an_invented_custom_does_not_beat_the_honest_answer(starter: Scorer, name: str) -> None:
    """Made-up specifics are far from every related culture's knowledge, which D's rival
    discount alone would pay for; the target's own knowledge does not hold them either."""
    result = scores(starter, CASES[name])
    assert result["invented"].objective < result["honest"].objective


def test_without_holding_out_the_rivals_counterparts_a_vague_answer_would_tie(starter: Scorer) -> None:
    """The control: when only the target's shown items are held out, the honest answer loses the
    evidence it was written from while the compared cultures keep theirs, and a vague answer
    ties or beats it (docs/scorers.md: +0.004 on average, the US case by +0.025; with the
    counterparts held out every vague answer loses, by 0.012-0.118). Both without D's rival
    discount, whose question to the target's own knowledge keeps the vague answer below the
    margin on its own (at most +0.015 without the symmetric hold-out): the hold-out is what is
    tested here."""
    lopsided = Scorer(starter.memory, ScoringSettings(hold_out_rivals=False, rival_overlap_slope=0.0))
    symmetric = Scorer(starter.memory, ScoringSettings(rival_overlap_slope=0.0))
    gains = {"lopsided": [], "symmetric": []}
    for case in gaming.STARTER_CASES:
        for name, scorer in (("lopsided", lopsided), ("symmetric", symmetric)):
            result = scores(scorer, case)
            gains[name].append(result["generic"].objective - result["honest"].objective)
    print(gains)
    assert max(gains["lopsided"]) > gaming.MARGIN and sum(gains["lopsided"]) > 0, gains
    assert all(s < lop for s, lop in zip(gains["symmetric"], gains["lopsided"], strict=True)), gains
