"""The scorers benchmarks/scorer_validation.py compares with CAReDiO's own still run against the
scorer's internals (two of them override parts of it) and still attribute: a variant broken by a
change to the Scorer fails here, not after a quarter of an hour of benchmark.

Real MiniLM, a real BLEnD memory of three countries (read from ../shared).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from caredio.memory.blend import BlendAnswer, BlendQuestion, read_blend
from caredio.memory.store import CulturalMemory
from testing.blend import blend_subset

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import scorer_variants

CULTURES = ("South Korea", "Ethiopia", "United Kingdom")
FLOOR = {"naive": 0.4, "background": 0.8, "lr": 0.6}  # measured: 12, 30 and 21 of 30


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> CulturalMemory:
    folder = tmp_path_factory.mktemp("blend")
    memory = CulturalMemory.open(embedder)
    for country in ("South_Korea", "Ethiopia", "UK"):
        memory.add_knowledge(read_blend(blend_subset(folder, country, 40)))
    return memory


def distinctive(memory: CulturalMemory, culture: str, n: int) -> list[tuple[str, str]]:
    """(question, answer) of the culture's most agreed answers that no other culture gave."""
    matrices = memory.matrices()
    others = {t.split(" — ")[1].lower() for c, m in matrices.items() if c != culture for t in m.texts}
    matrix = matrices[culture]
    order = sorted(range(len(matrix.ids)), key=lambda i: -matrix.weights[i])
    pairs = [matrix.texts[i].split(" — ") for i in order]
    return [(q, a) for q, a in pairs if a.lower() not in others][:n]


@pytest.mark.parametrize("variant", ["naive", "background", "lr"])
def test_each_variant_attributes_a_cultures_own_answers_to_it(memory: CulturalMemory, variant: str) -> None:
    scorer = {"naive": lambda: scorer_variants.NaiveScorer(memory),
              "background": lambda: scorer_variants.BackgroundScorer(memory),
              "lr": lambda: scorer_variants.EmbeddingLRScorer(memory)}[variant]()
    right = total = 0
    for culture in CULTURES:
        for question, answer in distinctive(memory, culture, 10):
            result = scorer.score(question, answer, culture, [c for c in CULTURES if c != culture])
            assert sum(result.attribution.values()) == pytest.approx(1.0, abs=1e-6)
            right += result.predicted_culture == culture
            total += 1
    # Answers in memory that no other culture gave; chance, or naming one culture every time, is
    # one in three. The naive reference embeds "question — answer", and all three cultures hold
    # the same questions here, so it is barely above that (12 of 30 when written).
    assert right >= FLOOR[variant] * total, (variant, right, total)


def test_the_benchmark_shares_a_tie_instead_of_crediting_the_target() -> None:
    """Top-k credit with ties broken at random: a target tied with one rival at the top is half
    a top-1 hit and a whole top-3 one; tied with four at the top, 3/5 of a top-3 hit."""
    import scorer_validation

    two = {"Target": 0.4, "Rival": 0.4, "Other": 0.2}
    assert scorer_validation.rank_credit(two, "Target", 1) == 0.5
    assert scorer_validation.rank_credit(two, "Target", 3) == 1.0
    five = dict.fromkeys(("Target", "A", "B", "C", "D"), 0.2)
    assert scorer_validation.rank_credit(five, "Target", 3) == pytest.approx(0.6)
    assert scorer_validation.rank_credit({"Target": 0.1, "A": 0.5, "B": 0.4}, "Target", 1) == 0.0
    assert scorer_validation.rank_credit({"Target": 0.1, "A": 0.5, "B": 0.4}, "Target", 3) == 1.0


def asked(culture: str, *answers: str) -> dict[str, BlendQuestion]:
    """One BLEnD question "q1" for ``culture``: its first answer given by 3 of 5 annotators (a
    majority answer), the others by one each (single votes)."""
    return {"q1": BlendQuestion("q1", culture, "food", "What do people eat for breakfast?", 5,
                                [BlendAnswer(text, 3 if i == 0 else 1) for i, text in enumerate(answers)])}


def test_the_benchmark_knows_which_cases_only_shared_answers_make() -> None:
    """The breakdowns by answer overlap: an attribution case is labelled by its least shared
    answer (0 when some answer is the country's alone, else how many other countries gave even
    that one), an R pair by how many other countries gave each of its answers (spellings matched
    as for D's labels). A wrong label would mix the unattributable cases with the attributable
    ones and hide what limits top-1 and R."""
    import blend_cases

    data = {"A": asked("A", "Rice", "Injera"), "B": asked("B", "rice", "Bread"),
            "C": asked("C", "Bread", "Rices"), "D": asked("D", "Coffee")}
    cases = blend_cases.cases(data, ["q1"])
    least = dict(zip((c for c, *_ in cases.attribution), cases.attribution_least_shared, strict=True))
    # A: injera is its own; B: rice (A, C) and bread (C) both shared; C: bread (B), rices (A, B)
    assert least == {"A": 0, "B": 1, "C": 1, "D": 0}
    # R's pairs (majority, single vote) with how many other countries gave each
    assert [(c, m, s) for c, _, m, s in cases.pairs] == [("A", "Rice", "Injera"), ("B", "rice", "Bread"),
                                                         ("C", "Bread", "Rices")]
    assert cases.pairs_shared_by == [(2, 0), (2, 1), (1, 2)]
    # D's labels are unchanged by the refactor: injera and coffee are distinctive, none shared by 3
    assert sorted((c, a) for c, _, a, distinctive, _ in cases.distinct if distinctive) == [
        ("A", "Injera."), ("D", "Coffee.")]


def test_the_benchmark_reports_each_overlap_group_apart() -> None:
    """``evaluate`` puts each case's credit in its own group. A fake scorer (it tests the
    benchmark's bookkeeping, not a score) attributes every answer to the country asked about
    only when the case has an answer of that country's own (else it ranks it last), and gives R
    1 only to "Injera", so each group's figure is known: swapping masks or groups changes them."""
    import blend_cases
    import scorer_validation

    data = {"A": asked("A", "Injera", "Rice"), "B": asked("B", "rice", "Bread"),
            "C": asked("C", "Bread", "Teff"), "D": asked("D", "Coffee")}
    cases = blend_cases.cases(data, ["q1"])
    own_answers = {"A": "Injera", "C": "Teff", "D": "Coffee"}

    class FakeScorer:
        memory = SimpleNamespace(cultures=lambda: sorted(data))

        def warm(self, texts: list[str]) -> None:
            pass

        def score(self, question: str, response: str, culture: str, contrast: list[str],
                  contrast_responses: Any = None) -> Any:
            mine = culture in own_answers and own_answers[culture] in response
            if mine:
                attribution = {c: 1.0 if c == culture else 0.0 for c in [culture, *contrast]}
            else:  # the country asked about last, below every rival
                attribution = {c: 0.0 if c == culture else 1.0 if c == "D" else 0.5 for c in [culture, *contrast]}
            return SimpleNamespace(attribution=attribution, predicted_culture=max(attribution, key=attribution.get),
                                   representativeness=1.0 if "Injera" in response else 0.0, distinctiveness=0.5)

    figures = scorer_validation.evaluate(FakeScorer(), cases, ("A", "R"))
    # A, C and D have an answer of their own (all hits); B's answers are all shared (a miss)
    assert figures["attribution_by_overlap"] == {
        "some answer no other country gave": {"samples": 3, "top1": 1.0, "top3": 1.0},
        "every answer also another country's": {"samples": 1, "top1": 0.0, "top3": 0.0}}
    # pairs: A (Injera own, rice shared) won; B (rice shared, bread shared) tied; C (bread shared,
    # teff own) tied
    assert figures["representativeness_by_overlap"] == {
        "majority answer also another country's": {"pairs": 2, "pairwise": 0.5},
        "majority answer the country's alone, single-vote answer not": {"pairs": 1, "pairwise": 1.0}}
