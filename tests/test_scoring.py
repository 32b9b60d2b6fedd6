"""The scorers on a real memory (a BLEnD subset, real MiniLM, real Chroma): ranges, and
monotonicity on constructed cases."""

from __future__ import annotations

from typing import Any

import pytest

from caredio.config import ScoringSettings
from caredio.errors import UserInputError
from caredio.memory.blend import read_blend
from caredio.memory.scoring import Scorer, split_segments
from caredio.memory.store import CulturalMemory
from tests.test_blend import blend_subset

QUESTIONS = 40
UNRELATED = "The quarterly earnings report of the logistics company is due on Friday."


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Scorer:
    folder = tmp_path_factory.mktemp("blend")
    memory = CulturalMemory.open(embedder)
    for country in ("South_Korea", "Ethiopia", "UK"):
        memory.add_knowledge(read_blend(blend_subset(folder, country, QUESTIONS)))
    return Scorer(memory, ScoringSettings())


def answers(scorer: Scorer, culture: str, unique: bool) -> list[str]:
    """Answer parts of a culture's items, optionally only those no other culture gave."""
    matrices = scorer.memory.matrices()
    others = {t.split(" — ")[1].lower() for c, m in matrices.items() if c != culture for t in m.texts}
    found = [t.split(" — ")[1] for t in matrices[culture].texts]
    return [a for a in found if not unique or a.lower() not in others]


def test_ranges_and_shape(scorer: Scorer) -> None:
    cultures = scorer.contrast_set("South Korea", "all")
    assert sorted(cultures) == ["Ethiopia", "United Kingdom"]
    for response in ("kimchi, bulgogi.", UNRELATED, "Families gather and eat rice cakes. Children bow to elders."):
        result = scorer.score("What do people eat on holidays?", response, "South Korea", cultures)
        for value in (result.representativeness, result.distinctiveness, result.objective):
            assert 0.0 <= value <= 1.0
        assert sum(result.attribution.values()) == pytest.approx(1.0, abs=1e-6)
        assert result.predicted_culture in result.attribution
        assert result.distinctiveness == pytest.approx(result.attribution["South Korea"])
        assert set(result.to_dict()) >= {"culture", "representativeness", "distinctiveness", "objective",
                                         "attribution", "predicted_culture"}


def test_copied_core_knowledge_scores_higher_r_than_unrelated(scorer: Scorer) -> None:
    matrix = scorer.memory.matrices()["United Kingdom"]
    top = max(range(len(matrix.texts)), key=lambda i: matrix.weights[i])
    question, answer = matrix.texts[top].split(" — ")
    core = scorer.score(question, f"{answer}.", "United Kingdom", []).representativeness
    unrelated = scorer.score(question, UNRELATED, "United Kingdom", []).representativeness
    assert core > unrelated


def test_majority_answer_scores_higher_r_than_fringe(scorer: Scorer) -> None:
    matrix = scorer.memory.matrices()["South Korea"]
    ranked = sorted(range(len(matrix.texts)), key=lambda i: -matrix.weights[i])
    consensus = ", ".join(matrix.texts[i].split(" — ")[1] for i in ranked[:5])
    fringe = ", ".join(matrix.texts[i].split(" — ")[1] for i in ranked[-5:])
    question = "What is common in everyday life?"
    assert (scorer.score(question, consensus, "South Korea", []).representativeness
            > scorer.score(question, fringe, "South Korea", []).representativeness)


def test_another_cultures_distinctive_items_score_lower_d(scorer: Scorer) -> None:
    contrast = ["Ethiopia", "United Kingdom"]
    own = ", ".join(answers(scorer, "South Korea", unique=True)[:8])
    foreign = ", ".join(answers(scorer, "Ethiopia", unique=True)[:8])
    question = "What do people usually do?"
    own_d = scorer.score(question, own, "South Korea", contrast).distinctiveness
    foreign_d = scorer.score(question, foreign, "South Korea", contrast).distinctiveness
    assert own_d > foreign_d
    assert scorer.score(question, foreign, "Ethiopia", ["South Korea", "United Kingdom"]).predicted_culture == "Ethiopia"


def test_contrast_answer_saying_the_same_lowers_d(scorer: Scorer) -> None:
    question, response = "What is a popular snack?", "Dried squid with peanuts."
    plain = scorer.score(question, response, "South Korea", ["Ethiopia", "United Kingdom"])
    echoed = scorer.score(question, response, "South Korea", ["Ethiopia", "United Kingdom"],
                          contrast_responses={"United Kingdom": "Dried squid with peanuts."})
    assert echoed.distinctiveness < plain.distinctiveness


def test_generic_sentences_are_flagged(scorer: Scorer) -> None:
    result = scorer.score("What do people eat?", f"Kimchi is served with every meal. {UNRELATED}",
                          "South Korea", ["Ethiopia", "United Kingdom"])
    assert isinstance(result.generic_sentences, list) and isinstance(result.missing_core, list)


def test_contrast_sets(scorer: Scorer) -> None:
    assert len(scorer.contrast_set("Ethiopia", "auto")) == 2
    assert scorer.contrast_set("Ethiopia", ["Ethiopia", "United Kingdom"]) == ["United Kingdom"]
    with pytest.raises(UserInputError, match="Atlantis"):
        scorer.contrast_set("Ethiopia", ["Atlantis"])
    with pytest.raises(UserInputError, match="Atlantis"):
        scorer.contrast_set("Atlantis", "all")


@pytest.mark.parametrize(("text", "segments"), [
    ("kimchi, bulgogi, soju.", ["kimchi", "bulgogi", "soju"]),
    ("People eat rice. They bow, and they smile when greeting friends at home in the evening.",
     ["People eat rice.", "They bow, and they smile when greeting friends at home in the evening."]),
    ("Families gather; elders are served first.", ["Families gather", "elders are served first"]),
    ("During the long national holidays, many families travel back to their home towns, "
     "visit the graves of their ancestors and share a big meal.",
     ["During the long national holidays, many families travel back to their home towns, "
      "visit the graves of their ancestors and share a big meal."]),
])
def test_split_segments(text: str, segments: list[str]) -> None:
    assert split_segments(text) == segments


def test_settings_change_scores(scorer: Scorer) -> None:
    sharp = Scorer(scorer.memory, ScoringSettings(temperature=0.01))
    soft = Scorer(scorer.memory, ScoringSettings(temperature=1.0))
    args = ("What is eaten?", "kimchi.", "South Korea", ["Ethiopia", "United Kingdom"])
    assert sharp.score(*args).distinctiveness > soft.score(*args).distinctiveness
