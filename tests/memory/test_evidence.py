"""Per-segment evidence (memory/evidence.py) on the real starter pack with real MiniLM: one
label per segment of the answer, from the same pass that computed R and D.

The answers are written so that each label has one clear case; the invariants tie the evidence
to the score it explains (the critic's generic sentences, the off-topic list, R's and D's
shares), so a second, drifting computation would break them.
"""

from __future__ import annotations

from typing import Any

import pytest

from caredio.config.settings import ScoringSettings
from caredio.memory.ingest import starter_pack
from caredio.memory.scoring import Scorer
from caredio.memory.store import CulturalMemory
from caredio.rundir.formats import LABELS, SegmentEvidence, parse_line

QUESTION = "How do people greet each other when they meet?"
CONTRAST = ["China", "South Korea"]


@pytest.fixture(scope="module")
def scorer(embedder: Any) -> Scorer:
    memory = CulturalMemory.open(embedder)
    memory.add_knowledge(starter_pack())
    return Scorer(memory, ScoringSettings())


def shown_item() -> tuple[str, str]:
    item = next(i for i in starter_pack() if i.id == "starter-japan-greetings_etiquette-2")
    return item.id, item.text  # business cards, with both hands


def segments(response: str, evidence: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(entry["label"], response[entry["span"][0]:entry["span"][1]]) for entry in evidence]


def test_each_label_has_its_case_and_every_segment_is_found_in_the_answer(scorer: Scorer) -> None:
    shown_id, shown_text = shown_item()
    response = ("People are addressed by their family name followed by san. "
                "People are addressed by their family name followed by san. "
                "Children love to play football in the park after school. "
                "We greet with a bow, and men often combine it with a handshake. "
                "Guests wear purple zorbleth hats and hum to every greeting. "
                f"{shown_text}")
    score = scorer.score(QUESTION, response, "Japan", CONTRAST, None, [shown_id])
    found = segments(response, score.evidence)
    assert [label for label, _ in found] == [
        "supported", "repeated", "off_topic", "shared", "unsupported", "copied"], found
    # Every segment is located: joined, the spans give back the answer's sentences.
    assert " ".join(text for _, text in found) == response
    shared = score.evidence[3]
    assert shared["shared_with"] == "South Korea" and shared["rival"][0] == "South Korea"
    for entry in score.evidence:
        parse_line(SegmentEvidence, entry, "evidence")  # the stored contract
        assert entry["label"] in LABELS
        # The item shown to the agents does not score this sample: never cited as support.
        assert shown_id not in [item_id for item_id, _ in entry["support"]]


def test_the_evidence_explains_the_score_it_came_with(scorer: Scorer) -> None:
    response = ("People bow when they greet; a deeper bow shows more respect. "
                "Business cards are given with both hands. "
                "Children love to play football in the park after school.")
    score = scorer.score(QUESTION, response, "Japan", CONTRAST)
    by_text = {response[e["span"][0]:e["span"][1]]: e for e in score.evidence}
    # What the score called off-topic and generic is what the evidence labels so.
    assert {t for t, e in by_text.items() if e["label"] == "off_topic"} == set(score.off_topic)
    for sentence in score.generic_sentences:
        assert by_text[sentence]["label"] in ("shared", "unsupported"), (sentence, by_text[sentence])
    # R's and D's shares are split among the segments that carried them.
    assert score.representativeness > 0 and score.distinctiveness > 0
    assert sum(e["r_share"] for e in score.evidence) == pytest.approx(1.0, abs=0.01)
    assert sum(e["d_share"] for e in score.evidence) == pytest.approx(1.0, abs=0.01)
    assert by_text["Children love to play football in the park after school."]["r_share"] == 0.0


def test_a_blank_answer_has_no_evidence_and_explain_off_computes_none(scorer: Scorer, embedder: Any) -> None:
    assert scorer.score(QUESTION, "   ", "Japan", CONTRAST).evidence == []
    quiet = Scorer(scorer.memory, ScoringSettings(explain=False))
    answer = "People bow when they greet."
    off = quiet.score(QUESTION, answer, "Japan", CONTRAST)
    on = scorer.score(QUESTION, answer, "Japan", CONTRAST)
    assert off.evidence == [] and on.evidence
    assert (off.representativeness, off.distinctiveness) == (on.representativeness, on.distinctiveness)


def test_a_name_written_with_full_stops_keeps_the_segment_as_scored(scorer: Scorer) -> None:
    """The scorer splits the answer with names taken out; where the answer itself splits
    otherwise ("U.S." ends in a full stop), the entry keeps the text it scored."""
    response = "Unlike in the U.S. people bow when they greet. They bow deeper to elders."
    score = scorer.score(QUESTION, response, "Japan", CONTRAST)
    assert score.evidence
    for entry in score.evidence:
        assert ("span" in entry) != ("text" in entry)
        if "span" in entry:
            assert response[entry["span"][0]:entry["span"][1]].strip()
