"""The question gate's claim neighbours: which questions a segment's nearest claims answer.

A bare word ("Wrestling", "Tehran") is about equally far from any phrasing of any question, so
its own similarity cannot say whether it answers this one. The memory holds thousands of bare
claims, each given as the answer to a known question; the questions a segment's nearest claims
answer can (docs/scorers.md, "Question relevance").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

TEMPERATURE = 0.02  # cosine; sharpness of the nearest claims' votes
FLOOR = 0.5  # a segment's nearest claim must be at least this like it to speak for it


@dataclass
class Stacked:
    """Every culture's attribution views and item embeddings, one row per item."""

    matrices: Any  # the memory's matrices these were stacked from
    claims: np.ndarray
    items: np.ndarray
    bounds: dict[str, tuple[int, int]]  # each culture's rows

    @classmethod
    def of(cls, matrices: dict[str, Any], view: Callable[[Any], np.ndarray]) -> Stacked:
        ends = np.cumsum([len(m.ids) for m in matrices.values()])
        return cls(matrices=matrices,
                   claims=np.concatenate([view(m) for m in matrices.values()]),
                   items=np.concatenate([m.embeddings for m in matrices.values()]),
                   bounds={c: (int(end) - len(m.ids), int(end))
                           for (c, m), end in zip(matrices.items(), ends, strict=True)})


def answered_questions(sims: np.ndarray, items: np.ndarray, query: np.ndarray, k: int,
                       scaled: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per segment: how relevant to the question are the questions its ``k`` nearest claims
    answer, and how far they may speak for it (0: its nearest claim is half-related or less on
    the backend's scale, 1: a paraphrase).

    ``sims``: cosine of each segment to every claim (rows of ``items`` in the same order). The
    nearest claims vote with their item's (context-dominated) relevance to the question,
    weighted by a sharp softmax of their similarity to the segment.
    """
    k = min(k, sims.shape[1])
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    near_sims = np.take_along_axis(sims, nearest, axis=1)
    votes = np.exp((near_sims - near_sims.max(axis=1, keepdims=True)) / TEMPERATURE)
    votes /= votes.sum(axis=1, keepdims=True)
    answered = (votes * scaled(items[nearest] @ query)).sum(axis=1)
    closeness = np.clip((scaled(near_sims.max(axis=1)) - FLOOR) / (1 - FLOOR), 0.0, 1.0)
    return np.asarray(answered), closeness
