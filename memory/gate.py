"""The question gate: how much each segment of an answer bears on the question, in [0, 1].

Relevance is judged against the question and its core knowledge, and — for bare words, which
are about equally far from any phrasing of any question — by the questions the memory's
nearest claims to the segment answer (memory/neighbours.py). docs/scorers.md gives the
measurements behind every threshold.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from caredio.config.settings import ScoringSettings
from caredio.memory.neighbours import answered_questions

Scale = Callable[[np.ndarray], np.ndarray]


def segment_weights(vectors: np.ndarray, query: np.ndarray | None, core_vectors: list[np.ndarray],
                    settings: ScoringSettings, scaled: Scale,
                    neighbours: tuple[np.ndarray, np.ndarray, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """How much each segment bears on the question, in [0, 1], and its relevance.

    A segment's relevance is the mean of its similarity to the question and to the question's
    core knowledge (``core_vectors``: the ``core_k`` most relevant items of every compared
    culture): the question alone misses answers phrased unlike it ("They bow" to a greeting
    question), the core alone lets in statements near some loosely related item. A segment
    counts fully when it is relevant in itself (``gate_low`` .. ``gate_high``), or when it is
    about as relevant as the answer's most relevant segment (within ``gate_margin``; nothing at
    twice the margin) — so a short answer whose words are far from any phrasing of the
    question still counts, while trivia appended to it does not. An answer whose best segment
    is below ``off_topic_floor`` counts for nothing.

    ``neighbours``: (the segments' cosine to every culture's stacked claims, the stacked items'
    vectors, k) when the claim neighbours are asked, else ``None``.
    """
    if query is None:
        return np.ones(len(vectors)), np.ones(len(vectors))
    to_question = scaled(vectors @ query)
    to_core = scaled(vectors @ np.concatenate(core_vectors).T).max(axis=1) if core_vectors else to_question
    relevance = (to_question + to_core) / 2
    if neighbours is not None:
        all_sims, items, k = neighbours
        answered, closeness = answered_questions(all_sims, items, query, k, scaled)
        # Neighbours speak only as far as they are like the segment: a sentence no claim
        # resembles keeps its own relevance (its nearest claims answer arbitrary questions).
        relevance = relevance + closeness * (answered - relevance) / 2
    absolute = np.clip((relevance - settings.gate_low) / (settings.gate_high - settings.gate_low), 0.0, 1.0)
    best = float(relevance.max())
    if best < settings.off_topic_floor:
        return np.zeros(len(vectors)), relevance
    return np.maximum(absolute, near(relevance, best, settings.gate_margin)), relevance


def near(relevance: np.ndarray, best: float, margin: float) -> np.ndarray:
    """1 within ``margin`` of the best relevance, falling to 0 at twice the margin."""
    if margin <= 0:
        return np.ones_like(relevance)
    return np.clip((2 * margin - (best - relevance)) / margin, 0.0, 1.0)


def latin_share(text: str) -> float:
    """Share of the letters written in the Latin script (1 for a text without letters)."""
    letters = [ch for ch in text if ch.isalpha()]
    return sum(ord(ch) < 0x250 for ch in letters) / len(letters) if letters else 1.0
