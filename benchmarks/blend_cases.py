"""BLEnD as ground truth for the scorers: the question split and the held-out cases.

Shared by ``scorer_validation.py`` and ``scoring_scale.py``. Nothing here looks at a score:
it only decides which questions go to memory, which are held out, and what the human labels
of each held-out case are.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from caredio.memory.blend import BlendAnswer, BlendQuestion, items_of, read_blend_questions
from caredio.memory.items import KnowledgeItem

DEFAULT_BLEND = Path(__file__).resolve().parents[2] / "shared" / "data" / "blend"
MAJORITY = 3  # of BLEnD's 5 annotators: more than half gave this answer
SHARED_BY = 3  # a "shared" answer was also given by at least this many other countries

Data = dict[str, dict[str, BlendQuestion]]  # culture -> question id -> question


def load(blend_dir: Path) -> Data:
    files = sorted(blend_dir.glob("*_data.json"))
    if not files:
        raise SystemExit(f"{blend_dir}: no BLEnD *_data.json files")
    data: Data = {}
    for path in files:
        questions = read_blend_questions(path)
        data[questions[0].culture] = {q.qid: q for q in questions}
    return data


def split(data: Data, seed: int, held_out: float) -> tuple[list[str], list[str]]:
    """Question ids present in every country, shuffled with ``seed``: (memory, held-out)."""
    common = sorted(set.intersection(*(set(qs) for qs in data.values())))
    random.Random(seed).shuffle(common)
    cut = round(len(common) * held_out)
    return sorted(common[cut:]), sorted(common[:cut])


def memory_items(data: Data, ids: list[str]) -> list[KnowledgeItem]:
    keep = set(ids)
    return [item for qs in data.values() for qid, q in qs.items() if qid in keep for item in items_of(q)]


def answer_keys(answer: BlendAnswer) -> set[str]:
    """Normalized spellings of an answer, to decide whether two countries gave the same one."""
    keys = set()
    for variant in [answer.text, *answer.variants]:
        key = re.sub(r"[^\w\s]", " ", variant.lower())
        key = " ".join(w.rstrip("s") if len(w) > 3 else w for w in key.split())
        if key:
            keys.add(key)
    return keys


def listing(answers: list[BlendAnswer]) -> str:
    """A response stating the annotators' answers, most agreed first."""
    return ", ".join(a.text for a in answers) + "."


@dataclass
class Cases:
    """Held-out samples with their human labels."""

    # (culture, question, response, contrast responses: other culture -> its answers)
    attribution: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)
    # per attribution case: how many other countries gave its least shared answer (0: some
    # answer is the country's alone) — what no scorer can attribute is the rest
    attribution_least_shared: list[int] = field(default_factory=list)
    # (culture, question, majority answer, single-vote answer)
    pairs: list[tuple[str, str, str, str]] = field(default_factory=list)
    # per pair: how many other countries gave its majority answer and its single-vote answer
    pairs_shared_by: list[tuple[int, int]] = field(default_factory=list)
    # (culture, question, answer, distinctive?, contrast responses)
    distinct: list[tuple[str, str, str, bool, dict[str, str]]] = field(default_factory=list)


def cases(data: Data, ids: list[str]) -> Cases:
    out = Cases()
    cultures = sorted(data)
    for qid in ids:
        per = {c: data[c][qid] for c in cultures if data[c][qid].answers}
        keys = {c: [answer_keys(a) for a in q.answers] for c, q in per.items()}
        for culture, q in per.items():
            others = {o: listing(per[o].answers) for o in per if o != culture}
            out.attribution.append((culture, q.question, listing(q.answers), others))
            sharing = [sum(any(own & theirs for theirs in keys[o]) for o in per if o != culture)
                       for own in keys[culture]]
            out.attribution_least_shared.append(min(sharing))
            majority = [(a, n) for a, n in zip(q.answers, sharing, strict=True) if a.count >= MAJORITY]
            singles = [(a, n) for a, n in zip(q.answers, sharing, strict=True) if a.count == 1]
            for (m, m_shared), (s, s_shared) in itertools.product(majority, singles):
                out.pairs.append((culture, q.question, m.text, s.text))
                out.pairs_shared_by.append((m_shared, s_shared))
            for answer, shared_by in zip(q.answers, sharing, strict=True):
                if shared_by == 0 or shared_by >= SHARED_BY:
                    out.distinct.append((culture, q.question, answer.text + ".", shared_by == 0, others))
    return out
