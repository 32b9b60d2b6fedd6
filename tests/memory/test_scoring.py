"""The scorers on a real memory (a BLEnD subset, real MiniLM, real Chroma): ranges, degenerate
input, monotonicity on constructed cases, calibration for culture size, cross-fitting.

Gaming cases on the starter pack are in tests/test_gaming.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from caredio.config.settings import ScoringSettings
from caredio.culture_names import mentions, neutralize
from caredio.errors import UserInputError
from caredio.memory.blend import read_blend
from caredio.memory.items import KnowledgeItem
from caredio.memory.scoring import Scorer
from caredio.memory.segments import copied_from, split_segments, unique_segments
from caredio.memory.store import CulturalMemory
from testing.blend import blend_subset

QUESTIONS = 40
UNRELATED = "The quarterly earnings report of the logistics company is due on Friday."
OTHERS = ["Ethiopia", "United Kingdom"]


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


def item(scorer: Scorer, culture: str, rank: int) -> tuple[str, str, str]:
    """(id, question, answer) of the culture's item with the ``rank``-th highest weight."""
    matrix = scorer.memory.matrices()[culture]
    index = sorted(range(len(matrix.ids)), key=lambda i: -matrix.weights[i])[rank]
    question, answer = matrix.texts[index].split(" — ")
    return matrix.ids[index], question, answer


def test_ranges_and_shape(scorer: Scorer) -> None:
    cultures = scorer.contrast_set("South Korea", "all")
    assert sorted(cultures) == OTHERS
    for response in ("Rice cake soup and glass noodles.", "Families gather and eat rice cakes. Children bow to elders."):
        result = scorer.score("What do people eat on holidays?", response, "South Korea", cultures)
        for value in (result.representativeness, result.distinctiveness, result.objective):
            assert 0.0 < value <= 1.0
        assert sum(result.attribution.values()) == pytest.approx(1.0, abs=1e-6)
        assert result.predicted_culture in result.attribution
        # D is the target's attribution, discounted by what a rival's knowledge states
        assert result.distinctiveness <= result.attribution["South Korea"] + 1e-9
        plain = Scorer(scorer.memory, ScoringSettings(rival_overlap_slope=0)).score(
            "What do people eat on holidays?", response, "South Korea", cultures)
        assert plain.distinctiveness == pytest.approx(plain.attribution["South Korea"])
        assert result.objective == pytest.approx(0.5 * result.representativeness + 0.5 * result.distinctiveness)
        assert result.flags == []
        assert set(result.to_dict()) >= {"culture", "representativeness", "distinctiveness", "objective",
                                         "attribution", "predicted_culture", "flags"}


@pytest.mark.parametrize("blank", ["", "   ", "\n\t", " . ! "])
def test_a_blank_answer_scores_nothing_and_is_flagged(scorer: Scorer, blank: str) -> None:
    result = scorer.score("What do people eat on holidays?", blank, "South Korea", OTHERS)
    assert (result.representativeness, result.distinctiveness, result.objective) == (0.0, 0.0, 0.0)
    assert result.flags == ["blank"]


def test_an_answer_to_another_question_scores_nothing(scorer: Scorer) -> None:
    result = scorer.score("What do people eat on holidays?", UNRELATED, "South Korea", OTHERS)
    assert result.objective == 0.0
    assert "off_topic" in result.flags
    assert result.off_topic == [UNRELATED]


def test_no_distinctiveness_without_a_rival(scorer: Scorer) -> None:
    for contrast in ([], ["South Korea"]):
        with pytest.raises(UserInputError, match="at least one related culture"):
            scorer.score("What is eaten?", "Kimchi.", "South Korea", contrast)
        with pytest.raises(UserInputError, match="at least one related culture"):
            scorer.contrast_set("South Korea", contrast)


def test_contrast_sets(scorer: Scorer) -> None:
    assert len(scorer.contrast_set("Ethiopia", "auto")) == 2
    assert scorer.contrast_set("Ethiopia", ["Ethiopia", "United Kingdom"]) == ["United Kingdom"]
    with pytest.raises(UserInputError, match="Atlantis"):
        scorer.contrast_set("Ethiopia", ["Atlantis"])
    with pytest.raises(UserInputError, match="Atlantis"):
        scorer.contrast_set("Atlantis", "all")


def test_saying_it_again_adds_nothing(scorer: Scorer) -> None:
    _, question, answer = item(scorer, "South Korea", 0)
    once = f"People usually choose {answer}. Elders are served first."
    again = f"{once} {once} people usually choose {answer.upper()}!"
    first = scorer.score(question, once, "South Korea", OTHERS)
    repeated = scorer.score(question, again, "South Korea", OTHERS)
    assert repeated.objective == pytest.approx(first.objective, abs=1e-9)


def test_focus_discounts_only_what_the_question_does_not_support(scorer: Scorer) -> None:
    """A bare answer is one segment: all focus, scored as without it. Bare answers to unrelated
    questions appended to it get past the gate (it cannot judge one word) and lower R and D
    through the focus; without focus they could only raise R. (The held-out test that padding
    does not pay on average is tests/test_gaming_blend.py.)"""
    matrix = scorer.memory.matrices()["South Korea"]
    # Both without the claim neighbours, which judge most of this padding off the question, and
    # without D's rival-overlap discount, which lowers D for shared padding alike: the focus is
    # what is tested here.
    alone = {"gate_neighbours": 0, "rival_overlap_slope": 0.0}
    scorer = Scorer(scorer.memory, ScoringSettings(**alone))
    unfocused = Scorer(scorer.memory, ScoringSettings(r_focus=0.0, d_focus=0.0, **alone))
    order = sorted(range(len(matrix.ids)), key=lambda i: -matrix.weights[i])
    questions = list(dict.fromkeys(matrix.texts[i].split(" — ")[0] for i in order))
    vectors = scorer.memory.embedder.embed(questions)
    lowered = 0
    for n, question in enumerate(questions[:10]):
        top = [matrix.texts[i].split(" — ")[1] for i in order if matrix.texts[i].startswith(question)]
        alone = scorer.score(question, top[0], "South Korea", OTHERS)
        assert alone.representativeness == pytest.approx(
            unfocused.score(question, top[0], "South Korea", OTHERS).representativeness)
        # the top answers to the three questions least like this one: off-topic by construction
        padding = [next(matrix.texts[i].split(" — ")[1] for i in order if matrix.texts[i].startswith(questions[j]))
                   for j in np.argsort(vectors @ vectors[n])[:3]]
        padded = ", ".join([top[0], *padding])
        focused, plain = (s.score(question, padded, "South Korea", OTHERS) for s in (scorer, unfocused))
        assert focused.representativeness <= plain.representativeness + 1e-9
        assert focused.distinctiveness <= plain.distinctiveness + 1e-9
        assert focused.attribution == plain.attribution  # focus is not evidence of whose answer it is
        lowered += focused.objective < plain.objective - 0.01
    assert lowered >= 2, lowered  # 0 if the focus were not applied (the gate drops the rest)


def test_d_hears_only_segments_near_the_answers_most_relevant_one(scorer: Scorer) -> None:
    """A bare answer is one segment: the D margin changes nothing. Padded with a culture's bare
    answers to other questions, D pools only the segments about as relevant as the best one, so
    it differs from pooling every segment the gate lets in; attribution (whose answer) does not."""
    matrix = scorer.memory.matrices()["South Korea"]
    unmargined = Scorer(scorer.memory, ScoringSettings(d_margin=0.0))
    order = sorted(range(len(matrix.ids)), key=lambda i: -matrix.weights[i])
    questions = list(dict.fromkeys(matrix.texts[i].split(" — ")[0] for i in order))
    changed = 0
    for n, question in enumerate(questions[:10]):
        tops = [next(matrix.texts[i].split(" — ")[1] for i in order if matrix.texts[i].startswith(q))
                for q in (question, *questions[n + 1 : n + 4])]
        bare = scorer.score(question, tops[0], "South Korea", OTHERS)
        assert bare.distinctiveness == unmargined.score(question, tops[0], "South Korea", OTHERS).distinctiveness
        padded, plain = (s.score(question, ", ".join(tops), "South Korea", OTHERS) for s in (scorer, unmargined))
        assert padded.attribution == plain.attribution and padded.representativeness == plain.representativeness
        changed += abs(padded.distinctiveness - plain.distinctiveness) > 0.01
    assert changed >= 2, changed  # 0 if D pooled every gated segment


def test_a_bare_word_is_judged_by_the_questions_it_answers(scorer: Scorer) -> None:
    """A bare answer to another question ("soccer" padded onto a cafeteria-food answer) is about
    as near any phrasing of the question as the right answer is: similarity alone lets it past
    the gate. The claims the memory holds like it can tell — they answer other questions — so
    with ``gate_neighbours`` such padding is judged off the question, the honest answer never."""
    alone = Scorer(scorer.memory, ScoringSettings(gate_neighbours=0))
    matrix = scorer.memory.matrices()["South Korea"]
    order = sorted(range(len(matrix.ids)), key=lambda i: -matrix.weights[i])
    questions = list(dict.fromkeys(matrix.texts[i].split(" — ")[0] for i in order))
    vectors = scorer.memory.embedder.embed(questions)
    dropped = {"neighbours": 0, "alone": 0}
    for n, question in enumerate(questions[:10]):
        top = next(matrix.texts[i].split(" — ")[1] for i in order if matrix.texts[i].startswith(question))
        # the top answers to the three questions least like this one: off-topic by construction
        padding = [next(matrix.texts[i].split(" — ")[1] for i in order if matrix.texts[i].startswith(questions[j]))
                   for j in np.argsort(vectors @ vectors[n])[:3]]
        for name, judge in (("neighbours", scorer), ("alone", alone)):
            result = judge.score(question, ", ".join([top, *padding]), "South Korea", OTHERS)
            assert top not in result.off_topic, (question, top)
            dropped[name] += sum(p in result.off_topic for p in padding)
    assert dropped["neighbours"] >= dropped["alone"] + 3, dropped  # equal if the neighbours were not asked


def test_minilm_gives_no_weight_to_a_script_it_cannot_read(scorer: Scorer) -> None:
    """MiniLM reads English: a bare answer in Hangul is noise to it, whose script alone would
    attribute it to the one compared culture writing Hangul. It counts for nothing (as an
    off-topic answer does); a Latin-script word in it still counts."""
    read = Scorer(scorer.memory, ScoringSettings(skip_unreadable_script=False))
    hangul = "물, 커피, 우유."  # water, coffee, milk
    let_in = 0
    for n in range(10):
        _, question, answer = item(scorer, "South Korea", n)
        unread = scorer.score(question, hangul, "South Korea", OTHERS)
        assert unread.objective == 0.0 and "off_topic" in unread.flags
        let_in += read.score(question, hangul, "South Korea", OTHERS).objective > 0.0
        mixed = scorer.score(question, f"물, 커피, {answer}.", "South Korea", OTHERS)
        assert {"물", "커피"} <= set(mixed.off_topic) and answer not in mixed.off_topic
    assert let_in >= 1, let_in  # the gate alone lets Hangul in for some questions


def test_a_consensus_answer_scores_higher_r_than_a_fringe_one(scorer: Scorer) -> None:
    matrix = scorer.memory.matrices()["South Korea"]
    by_question: dict[str, list[int]] = {}
    for index, text in enumerate(matrix.texts):
        by_question.setdefault(text.split(" — ")[0], []).append(index)
    wins = total = 0
    for question, rows in by_question.items():
        top = max(rows, key=lambda i: matrix.weights[i])
        low = min(rows, key=lambda i: matrix.weights[i])
        if matrix.weights[top] >= 0.6 and matrix.weights[low] <= 0.2:
            high = scorer.score(question, matrix.texts[top].split(" — ")[1], "South Korea", OTHERS)
            fringe = scorer.score(question, matrix.texts[low].split(" — ")[1], "South Korea", OTHERS)
            wins += high.representativeness > fringe.representativeness
            total += 1
    assert total >= 10
    assert wins / total >= 0.8  # the answers are in memory: R must rank them by consensus


def test_another_cultures_distinctive_items_score_lower_d(scorer: Scorer) -> None:
    question = "What do people usually eat for dinner?"
    own = ", ".join(answers(scorer, "South Korea", unique=True)[:8])
    foreign = ", ".join(answers(scorer, "Ethiopia", unique=True)[:8])
    own_d = scorer.score(question, own, "South Korea", OTHERS).distinctiveness
    foreign_d = scorer.score(question, foreign, "South Korea", OTHERS).distinctiveness
    assert own_d > foreign_d
    assert scorer.score(question, foreign, "Ethiopia", ["South Korea", "United Kingdom"]).predicted_culture == "Ethiopia"


def test_the_critic_hears_of_what_a_rivals_knowledge_states(scorer: Scorer) -> None:
    """An answer South Korea and the UK both gave, Ethiopia not, is attributed about half to
    South Korea — above the attribution cutoff for "generic" — yet the UK's knowledge states it
    word for word, which D discounts: the critic is told it is shared."""
    matrices = scorer.memory.matrices()

    def answered(culture: str) -> dict[str, str]:
        return {t.split(" — ")[1].lower(): t.split(" — ")[0] for t in matrices[culture].texts}

    korean, british, ethiopian = (answered(c) for c in ("South Korea", "United Kingdom", "Ethiopia"))
    both = [a for a in korean if a in british and a not in ethiopian]
    plain = Scorer(scorer.memory, ScoringSettings(rival_overlap_slope=0.0))
    named_now = named_before = 0
    for answer in both[:8]:
        args = (korean[answer], answer.capitalize() + ".", "South Korea", OTHERS)
        named_now += bool(scorer.score(*args).generic_sentences)
        named_before += bool(plain.score(*args).generic_sentences)
    assert len(both) >= 8
    assert named_now == 8 and named_before <= 4


def test_contrast_answer_saying_the_same_lowers_d(scorer: Scorer) -> None:
    question, response = "What is a popular snack?", "Dried squid with peanuts."
    plain = scorer.score(question, response, "South Korea", OTHERS)
    echoed = scorer.score(question, response, "South Korea", OTHERS,
                          contrast_responses={"United Kingdom": "Dried squid with peanuts."})
    assert echoed.distinctiveness < plain.distinctiveness


def test_shown_items_do_not_score_their_own_copy(scorer: Scorer) -> None:
    item_id, question, answer = item(scorer, "United Kingdom", 0)
    copy = scorer.memory.matrices()["United Kingdom"].texts[
        scorer.memory.matrices()["United Kingdom"].ids.index(item_id)]
    seen = scorer.score(question, copy, "United Kingdom", ["South Korea", "Ethiopia"])
    held = scorer.score(question, copy, "United Kingdom", ["South Korea", "Ethiopia"], exclude_ids=[item_id])
    assert held.representativeness < seen.representativeness / 2
    # The item pasted whole ("context — claim") is one segment, a word-for-word copy of a shown
    # item: at the default copy weight it counts for nothing — less than the bare answer written
    # on its own (split at the "?", the claim used to be left over and scored as that answer).
    bare = scorer.score(question, answer, "United Kingdom", ["South Korea", "Ethiopia"], exclude_ids=[item_id])
    assert held.representativeness == 0.0 and held.objective == 0.0
    assert bare.representativeness > 0.0


def test_a_copy_stays_the_yardstick_for_what_follows_it(scorer: Scorer) -> None:
    """A pasted shown item earns nothing, but it is still what the answer says on the question:
    bare answers to other questions appended far behind it do not buy D, as they would not
    behind an honest statement. (When the copy's weight was dropped before D looked for the
    answer's most relevant segment, the padding became the yardstick: D > 0 in 4 of these 10.)"""
    matrix = scorer.memory.matrices()["South Korea"]
    order = sorted(range(len(matrix.ids)), key=lambda i: -matrix.weights[i])
    questions = list(dict.fromkeys(matrix.texts[i].split(" — ")[0] for i in order))
    bought = 0
    for n, question in enumerate(questions[:10]):
        first = next(i for i in order if matrix.texts[i].startswith(question))
        padding = [next(matrix.texts[i].split(" — ")[1] for i in order if matrix.texts[i].startswith(other))
                   for other in questions[n + 1 : n + 4]]
        answer = " ".join([matrix.texts[first], *(f"{p.capitalize()}." for p in padding)])
        result = scorer.score(question, answer, "South Korea", OTHERS, exclude_ids=[matrix.ids[first]])
        bought += result.distinctiveness > 0.0
    assert bought <= 1, bought


def test_the_critic_is_told_only_of_shown_knowledge(scorer: Scorer) -> None:
    matrix = scorer.memory.matrices()["South Korea"]
    shown = [matrix.ids[i] for i in np.argsort(-matrix.weights)[:3]]
    result = scorer.score("What do people eat?", "We eat bread and butter.", "South Korea", OTHERS,
                          exclude_ids=shown)
    shown_texts = {matrix.texts[matrix.ids.index(i)] for i in shown}
    assert result.missing_core and set(result.missing_core) <= shown_texts


def test_diagnosis_names_generic_and_off_topic_sentences(scorer: Scorer) -> None:
    _, question, answer = item(scorer, "South Korea", 0)
    shared = answers(scorer, "United Kingdom", unique=True)[0]
    result = scorer.score(question, f"{answer}. {shared}. {UNRELATED}", "South Korea", OTHERS,
                          contrast_responses={"United Kingdom": f"{shared}."})
    assert UNRELATED in result.off_topic
    assert any(shared in sentence for sentence in result.generic_sentences)
    assert not any(answer == sentence for sentence in result.generic_sentences)


def test_country_names_do_not_count(scorer: Scorer) -> None:
    _, question, answer = item(scorer, "South Korea", 1)
    plain = scorer.score(question, f"People eat {answer}.", "South Korea", OTHERS)
    named = scorer.score(question, f"In South Korea, Koreans eat {answer}.", "South Korea", OTHERS)
    assert named.objective == pytest.approx(plain.objective, abs=0.02)
    assert neutralize("In South Korea, Koreans and the UK's people", ["South Korea", "United Kingdom"]) == (
        "people and the country people")
    assert mentions("A Japanese custom in Japan; turkey in China", ["Japan", "Turkey"]) == ["Japan", "Japanese"]


def test_segments_and_repeats() -> None:
    assert split_segments("kimchi, bulgogi, soju.") == ["kimchi", "bulgogi", "soju"]
    assert split_segments("Families gather; elders are served first.") == ["Families gather", "elders are served first"]
    long = ("During the long national holidays, many families travel back to their home towns, "
            "visit the graves of their ancestors and share a big meal.")
    assert split_segments(long) == [long]
    assert unique_segments(["Kimchi", "kimchi!", "In the country", "Soju"]) == ["Kimchi", "Soju"]
    assert copied_from(["Gifts are opened right away in front of the giver.", "We bow."],
                       ["Gifts are usually opened immediately in front of the giver, with thanks."]).tolist() == [
        False, False]
    assert copied_from(["Gifts are usually opened immediately in front of the giver"],
                       ["Gifts are usually opened immediately in front of the giver, with thanks."]).tolist() == [True]
    # A pasted "context — claim" item stays one segment (split at its "?" the claim would be a
    # bare "— injera", too short to be seen as a copy) ...
    pasted = "What do people eat at weddings? — injera What is served first? — coffee"
    assert split_segments(pasted) == [pasted]
    assert split_segments("Do they bow? Yes. — A deep bow.") == ["Do they bow?", "Yes. — A deep bow."]
    # ... and items pasted together, their claims without a full stop, are one copy of both.
    shown = ["What do people eat at weddings? — injera", "What is served first? — coffee"]
    assert copied_from([pasted], shown).tolist() == [True]
    # A bare claim stated as the item states it is an answer, not a paste; five words are a copy.
    assert copied_from(["Bread of the dead", "bread of the dead."],
                       ["What is eaten on the Day of the Dead? — bread of the dead"]).tolist() == [False, False]
    assert copied_from(["they eat bread of the dead"],
                       ["What is eaten on the Day of the Dead? — they eat bread of the dead"]).tolist() == [True]


def test_settings_change_scores(scorer: Scorer) -> None:
    sharp = Scorer(scorer.memory, ScoringSettings(temperature=0.02))
    soft = Scorer(scorer.memory, ScoringSettings(temperature=2.0))
    args = ("What is eaten?", "Kimchi and tteokbokki.", "South Korea", OTHERS)
    assert sharp.score(*args).distinctiveness > soft.score(*args).distinctiveness


@pytest.mark.slow  # over 5 s: out of the fast lane
def test_a_large_dense_culture_does_not_take_the_attributions(embedder: Any, tmp_path: Any) -> None:
    """One culture's knowledge repeated eight times (as a large, redundant file would be) must
    not draw other cultures' answers to it: the fitted offsets cancel its density; the plain
    softmax does not."""
    memory = CulturalMemory.open(embedder)
    items = {country: read_blend(blend_subset(tmp_path, country, 60)) for country in ("South_Korea", "Ethiopia", "UK")}
    big = items.pop("UK")
    memory.add_knowledge([KnowledgeItem(culture=i.culture, text=f"{i.text}{' ' * copy}", topic=i.topic,
                                        weight=i.weight, source=i.source, id=f"{i.id}-{copy}")
                          for i in big for copy in range(8)])
    for rest in items.values():
        memory.add_knowledge(rest[: len(rest) // 2])  # and the others half their size
    held = [t for rest in items.values() for t in rest[len(rest) // 2:]]
    calibrated, plain = Scorer(memory), Scorer(memory, ScoringSettings(calibrate=False))
    shares = {}
    for name, scorer in (("calibrated", calibrated), ("plain", plain)):
        scorer.warm([t.text.split(" — ")[1] for t in held])
        predicted = [scorer.score(t.text.split(" — ")[0], t.text.split(" — ")[1], t.culture,
                                  [c for c in memory.cultures() if c != t.culture]).predicted_culture
                     for t in held]
        shares[name] = predicted.count("United Kingdom") / len(predicted)
    # Every held-out answer belongs to South Korea or Ethiopia: the large culture is always wrong.
    assert shares["calibrated"] < shares["plain"]
    assert shares["calibrated"] <= 2 / 3  # at most twice the fair share of three cultures


def test_a_tie_is_not_credited_to_the_culture_asked_about(embedder: Any) -> None:
    """Two cultures whose knowledge is word for word the same cannot be told apart: the
    predicted culture must be the same whichever of them is the target (the target is listed
    first, and a tie broken by list order went to it every time)."""
    memory = CulturalMemory.open(embedder)
    texts = ["What do people eat for breakfast? — rice", "What is the most popular sport? — football"]
    memory.add_knowledge([KnowledgeItem(culture=culture, text=text, topic="food", weight=0.8, source="test",
                                        id=f"{culture}-{n}")
                          for culture in ("Atlantis", "Lemuria") for n, text in enumerate(texts)])
    plain = Scorer(memory, ScoringSettings(calibrate=False))
    asked = {target: plain.score("What do people eat for breakfast?", "Rice.", target, [rival])
             for target, rival in (("Atlantis", "Lemuria"), ("Lemuria", "Atlantis"))}
    assert asked["Atlantis"].attribution["Atlantis"] == asked["Atlantis"].attribution["Lemuria"]
    assert asked["Atlantis"].predicted_culture == asked["Lemuria"].predicted_culture == "Atlantis"
