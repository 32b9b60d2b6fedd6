"""The gaming table on real human data (BLEnD, CC BY-SA 4.0, read from ../shared): held-out
questions of four countries, a memory built from the other questions, each case scored as the
loop scores it (the items the loop would show are held out of the evidence).

The figures asserted are the ones docs/scorers.md reports as holding on BLEnD; the cases that
still win sometimes (padding a one-word answer) are bounded on average, with controls that
show the same table without the question gate, or without the answer's focus, lets padding
pay more — so a broken gate or focus turns the padding test red.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from caredio.config.settings import ScoringSettings
from caredio.memory.scoring import Scorer
from caredio.memory.store import CulturalMemory

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import blend_cases  # noqa: E402
import gaming  # noqa: E402

pytestmark = pytest.mark.slow

COUNTRIES = ("China", "Mexico", "South Korea", "United Kingdom")


@pytest.fixture(scope="module")
def blend(embedder: Any) -> tuple[CulturalMemory, list[gaming.Case]]:
    if not blend_cases.DEFAULT_BLEND.is_dir():
        pytest.fail(f"BLEnD is expected at {blend_cases.DEFAULT_BLEND} (see ../shared/data/blend/README)")
    data = {c: qs for c, qs in blend_cases.load(blend_cases.DEFAULT_BLEND).items() if c in COUNTRIES}
    assert sorted(data) == sorted(COUNTRIES), sorted(data)
    memory_ids, held_ids = blend_cases.split(data, seed=0, held_out=0.2)
    memory = CulturalMemory.open(embedder)
    memory.add_knowledge(blend_cases.memory_items(data, memory_ids))
    cases = gaming.blend_cases(data, held_ids, per_country=10, seed=0)
    for case in cases:
        gaming.fill_shown(memory, case, key=f"{case.culture}/{case.question}")
    return memory, cases


def test_on_blend_gaming_does_not_pay(blend: tuple[CulturalMemory, list[gaming.Case]]) -> None:
    memory, cases = blend
    table = gaming.gaming_table(Scorer(memory), cases)
    print(gaming.format_table("BLEnD, 4 countries", table))  # shown by pytest when red
    assert table["honest"]["cases"] == 40 and table["honest"]["mean_J"] > 0.1
    assert table["repeated"]["wins"] == 0.0
    # Naming the country: its name is taken out before embedding; what is left ("In the
    # country") can still tip a near tie, so single cases may win — on average it never pays.
    assert table["named"]["mean_gain"] <= gaming.MARGIN
    assert table["blank"]["mean_J"] == 0.0
    assert table["copied"]["mean_gain"] < 0.0
    # Pasted "context — claim" items are whole copies now (17% wins, max +0.35 when the claim was
    # left over as a segment of its own), and a copy stays the yardstick for what follows it
    # (pasting gained up to +0.016 here when its weight was dropped first): it now loses in
    # every case (at most -0.08).
    assert table["copied"]["wins"] == 0.0 and table["copied"]["max_gain"] < 0.0
    assert table["padded"]["mean_gain"] <= gaming.MARGIN
    assert table["other_language"]["mean_gain"] < 0.0
    # Three invented words in place of the annotators' answers: nobody's knowledge holds them
    assert table["invented"]["wins"] == 0.0 and table["invented"]["mean_gain"] < -0.1


def test_without_the_question_gate_padding_would_pay(blend: tuple[CulturalMemory, list[gaming.Case]]) -> None:
    memory, cases = blend
    # without the focus and the D margin too: alone, each already keeps padding from paying on average
    # (and without the R margin, which would judge relevance as the gate does)
    # and without D's rival-overlap discount, which lowers D for shared padding alike
    ungated = ScoringSettings(gate_low=-10.0, gate_high=-9.0, off_topic_floor=-10.0, r_focus=0.0, d_focus=0.0,
                              d_margin=0.0, r_margin=0.0, rival_overlap_slope=0.0)
    table = gaming.gaming_table(Scorer(memory, ungated), cases)
    assert table["padded"]["mean_gain"] > gaming.MARGIN


def test_without_the_answers_focus_padding_would_pay_more(blend: tuple[CulturalMemory, list[gaming.Case]]) -> None:
    memory, cases = blend
    # the focus alone: the D margin and the gate's claim neighbours (below) also stop some of these wins
    alone = {"d_margin": 0.0, "gate_neighbours": 0, "rival_overlap_slope": 0.0}
    focused = gaming.gaming_table(Scorer(memory, ScoringSettings(**alone)), cases)
    unfocused = gaming.gaming_table(Scorer(memory, ScoringSettings(r_focus=0.0, d_focus=0.0, **alone)), cases)
    print(gaming.format_table("focus", focused), gaming.format_table("no focus", unfocused), sep="\n")
    assert unfocused["padded"]["mean_gain"] > focused["padded"]["mean_gain"] + 0.005
    assert unfocused["padded"]["wins"] > focused["padded"]["wins"]


def test_without_the_d_margin_padding_would_win_more(blend: tuple[CulturalMemory, list[gaming.Case]]) -> None:
    """D hears the segments about as relevant as the answer's best one: a culture's bare place
    names and dishes padded onto a bare answer pass the gate, and without the margin their
    attribution buys D."""
    memory, cases = blend
    # the D margin alone: with R's margin too, one honest list here loses its less relevant
    # items' coverage and its padded version wins by that (5 of 40 either way)
    margined = gaming.gaming_table(Scorer(memory, ScoringSettings(r_margin=0.0)), cases)
    unmargined = gaming.gaming_table(Scorer(memory, ScoringSettings(d_margin=0.0, r_margin=0.0)), cases)
    print(gaming.format_table("D margin", margined), gaming.format_table("no D margin", unmargined), sep="\n")
    # On these four countries 7 of 40 -> 4 (with the claim neighbours; 6 -> 5 before them); on
    # the benchmark's ten held-out countries half as many (docs/scorers.md).
    assert unmargined["padded"]["wins"] > margined["padded"]["wins"]
    assert margined["honest"]["mean_J"] == pytest.approx(unmargined["honest"]["mean_J"], abs=0.01)


def test_without_the_claim_neighbours_padding_would_win_more(blend: tuple[CulturalMemory, list[gaming.Case]]) -> None:
    """The question gate also asks which questions the memory's nearest claims to a segment
    answer: a bare word padded onto a bare answer matches claims given to other questions."""
    memory, cases = blend
    # the neighbours without R's margin, which stops some of the same padding (5 of 40 win either
    # way with it, against 4 and 5 without it)
    # (and without D's rival-overlap discount, which stops some too)
    asked = gaming.gaming_table(Scorer(memory, ScoringSettings(r_margin=0.0, rival_overlap_slope=0.0)), cases)
    alone = gaming.gaming_table(Scorer(memory, ScoringSettings(gate_neighbours=0, r_margin=0.0,
                                                               rival_overlap_slope=0.0)), cases)
    print(gaming.format_table("claim neighbours", asked), gaming.format_table("no claim neighbours", alone), sep="\n")
    assert asked["padded"]["wins"] < alone["padded"]["wins"]
    assert asked["padded"]["mean_gain"] < alone["padded"]["mean_gain"]


def _r_rises(scorer: Scorer, cases: list[gaming.Case]) -> list[float]:
    """How much R rises when each case's honest answer is padded (negative: it falls)."""
    rises = []
    for case in cases:
        shown = [item_id for item_id, _ in case.shown]
        variants = case.variants()
        honest, padded = (scorer.score(case.question, variants[v], case.culture, case.contrast, exclude_ids=shown)
                          for v in ("honest", "padded"))
        rises.append(padded.representativeness - honest.representativeness)
    return rises


def test_without_the_r_margin_padding_would_raise_r_more_often(blend: tuple[CulturalMemory, list[gaming.Case]]) -> None:
    """R's coverage hears only the segments about as relevant as the answer's best one: a bare
    answer to another question padded onto a bare answer passes the gate (one word is about
    as far from any question), and as coverage is a maximum over segments it could add to R.

    Not asserted: the largest rise. Where the gate judges the padding more relevant than the
    answer ("Flat / apartment" for what is found in Mexican back gardens), the margin makes the
    honest items the ones behind: the honest R falls (0.21 -> 0.14), the padded one does not."""
    memory, cases = blend
    margined = _r_rises(Scorer(memory), cases)
    unmargined = _r_rises(Scorer(memory, ScoringSettings(r_margin=0.0)), cases)
    raised = sum(rise > 0.02 for rise in margined)
    raised_without = sum(rise > 0.02 for rise in unmargined)
    print(f"R rises by > 0.02: {raised} of {len(cases)} with the R margin, {raised_without} without; "
          f"max {max(margined):+.3f} vs {max(unmargined):+.3f}")
    assert raised < raised_without  # 4 of 40 against 6
    gains = [gaming.gaming_table(Scorer(memory, ScoringSettings(r_margin=m)), cases)["padded"]["mean_gain"]
             for m in (None, 0.0)]
    assert gains[0] < gains[1]  # +0.001 against +0.003


def test_d_tells_answers_other_countries_gave_from_answers_none_gave(
        blend: tuple[CulturalMemory, list[gaming.Case]]) -> None:
    """BLEnD's label for distinctiveness on held-out questions: an answer no other country gave
    against one at least three others gave (here: every other one). Attribution alone spreads both about evenly (an
    answer everyone's knowledge holds, and one nobody's holds); D also discounts what a
    compared culture's knowledge states, and separates them far better."""
    memory, _ = blend
    data = {c: qs for c, qs in blend_cases.load(blend_cases.DEFAULT_BLEND).items() if c in COUNTRIES}
    _, held_ids = blend_cases.split(data, seed=0, held_out=0.2)
    cases = blend_cases.cases(data, held_ids).distinct
    scorers = {"discounted": Scorer(memory), "attribution only": Scorer(memory, ScoringSettings(rival_overlap_slope=0.0))}
    auc = {}
    for name, scorer in scorers.items():
        d: dict[bool, list[float]] = {True: [], False: []}
        for culture, question, answer, distinctive, _ in cases:
            d[distinctive].append(scorer.score(question, answer, culture, [c for c in COUNTRIES if c != culture])
                                  .distinctiveness)
        pairs = [(u > s) + 0.5 * (u == s) for u in d[True] for s in d[False]]
        auc[name] = sum(pairs) / len(pairs)
    print(auc, {k: len(v) for k, v in d.items()})
    assert auc["discounted"] > auc["attribution only"] + 0.05


def test_without_asking_the_targets_knowledge_invented_words_would_win(
        blend: tuple[CulturalMemory, list[gaming.Case]]) -> None:
    """D's rival discount credits what no rival's knowledge states; invented words qualify, so D
    also asks how near the target's own knowledge comes (``known_at``, ``unknown_share``).
    Without that, invented words beat the honest answer in some cases (2 of 40 here, at most
    +0.048; none and at most +0.009 with it)."""
    memory, cases = blend
    asked = gaming.gaming_table(Scorer(memory), cases)
    unasked = gaming.gaming_table(Scorer(memory, ScoringSettings(unknown_share=1.0)), cases)
    print(gaming.format_table("known", asked), gaming.format_table("not asked", unasked), sep="\n")
    assert unasked["invented"]["wins"] > asked["invented"]["wins"]
    assert unasked["invented"]["max_gain"] > asked["invented"]["max_gain"] + 0.02
