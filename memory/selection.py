"""Selection: a budget of samples per culture that maximizes the objective with diversity.

Greedy maximal marginal relevance: each pick maximizes ``J - gamma * max_sim(picked)``, where
``max_sim`` also counts samples accepted into memory by earlier runs. A candidate closer than
``duplicate_threshold`` to anything already picked or accepted is a near-duplicate and never
selected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from caredio.memory.embeddings import Embedder


@dataclass
class Pick:
    index: int
    objective: float
    score: float
    nearest_similarity: float
    nearest_id: str | None


def sample_text(line: dict[str, Any]) -> str:
    messages = [m for m in line["messages"] if m["role"] != "system"]
    return "\n".join(m["content"] for m in messages)


def select(
    lines: list[dict[str, Any]],
    embedder: Embedder,
    budget: int,
    per_culture: bool = True,
    diversity: float = 0.5,
    duplicate_threshold: float = 0.95,
    prior_ids: list[str] | None = None,
    prior_vectors: np.ndarray | None = None,
) -> list[Pick]:
    """Indices into ``lines`` in pick order, with why each was picked."""
    if not lines:
        return []
    vectors = embedder.embed([sample_text(line) for line in lines])
    groups: dict[str, list[int]] = {}
    for index, line in enumerate(lines):
        key = line["metadata"]["culture"] if per_culture else "*"
        groups.setdefault(key, []).append(index)
    picks: list[Pick] = []
    for members in groups.values():
        picks += _greedy(lines, vectors, members, budget, diversity, duplicate_threshold,
                         prior_ids or [], prior_vectors)
    return picks


def _greedy(
    lines: list[dict[str, Any]], vectors: np.ndarray, members: list[int], budget: int,
    diversity: float, duplicate_threshold: float, prior_ids: list[str], prior_vectors: np.ndarray | None,
) -> list[Pick]:
    chosen_ids = list(prior_ids)
    chosen = [prior_vectors[i] for i in range(len(prior_ids))] if prior_vectors is not None else []
    remaining = list(members)
    picks: list[Pick] = []
    while remaining and len(picks) < budget:
        best: Pick | None = None
        for index in remaining:
            objective = float(lines[index]["metadata"]["objective"])
            nearest, nearest_id = 0.0, None
            if chosen:
                sims = np.stack(chosen) @ vectors[index]
                at = int(sims.argmax())
                nearest, nearest_id = float(sims[at]), chosen_ids[at]
            if nearest >= duplicate_threshold:
                continue
            score = objective - diversity * max(nearest, 0.0)
            if best is None or score > best.score:
                best = Pick(index, objective, score, nearest, nearest_id)
        if best is None:
            break
        picks.append(best)
        remaining.remove(best.index)
        chosen.append(vectors[best.index])
        chosen_ids.append(lines[best.index]["metadata"]["sample_id"])
    return picks
