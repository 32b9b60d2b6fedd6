"""Selection: a budget of samples per culture that maximizes the objective with diversity.

Greedy maximal marginal relevance: each pick maximizes ``J - gamma * max_sim(picked)``, where
``max_sim`` also counts samples accepted into memory by earlier runs. A candidate closer than
``duplicate_threshold`` to anything already picked (in any culture) or accepted is a
near-duplicate and never selected: two copies of one conversation teach a model nothing
new, whatever the budget. Greedy MMR is the standard cheap approximation of the
quality-diversity trade-off (the objective is submodular-like), and it explains itself: each
pick names the already-picked sample nearest to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from caredio.conversation import line_text
from caredio.memory.embeddings import Embedder


@dataclass
class Pick:
    index: int
    objective: float
    score: float
    nearest_similarity: float
    nearest_id: str | None
    sample_id: str = ""
    group: str = ""


@dataclass
class Selection:
    """Picks in order, and the candidates refused as near-duplicates (with what they duplicate)."""

    picks: list[Pick] = field(default_factory=list)
    skipped: list[Pick] = field(default_factory=list)


def select(
    lines: Sequence[Mapping[str, Any]],
    embedder: Embedder,
    budget: int,
    per_culture: bool = True,
    diversity: float = 0.5,
    duplicate_threshold: float = 0.95,
    prior_ids: list[str] | None = None,
    prior_vectors: np.ndarray | None = None,
) -> list[Pick]:
    """Indices into ``lines`` in pick order, with why each was picked."""
    return select_detailed(
        lines,
        embedder,
        budget,
        per_culture,
        diversity,
        duplicate_threshold,
        prior_ids,
        prior_vectors,
    ).picks


def select_detailed(
    lines: Sequence[Mapping[str, Any]],
    embedder: Embedder,
    budget: int,
    per_culture: bool = True,
    diversity: float = 0.5,
    duplicate_threshold: float = 0.95,
    prior_ids: list[str] | None = None,
    prior_vectors: np.ndarray | None = None,
    vectors: np.ndarray | None = None,
) -> Selection:
    """Like :func:`select`, also reporting the near-duplicates it refused."""
    result = Selection()
    if not lines:
        return result
    if vectors is None:
        vectors = embedder.embed([line_text(line) for line in lines])
    groups: dict[str, list[int]] = {}
    for index, line in enumerate(lines):
        key = str(line["metadata"]["culture"]) if per_culture else "*"
        groups.setdefault(key, []).append(index)
    ids = [str(line["metadata"]["sample_id"]) for line in lines]
    prior = _Pool(list(prior_ids or []), prior_vectors)
    picked_anywhere = _Pool([], None)  # for the duplicate rule, across groups
    for group, members in groups.items():
        in_group = _Pool(list(prior.ids), prior.matrix)  # for the MMR penalty
        remaining = list(members)
        taken = 0
        while remaining and taken < budget:
            best: Pick | None = None
            for index in list(remaining):
                nearest, nearest_id = in_group.nearest(vectors[index])
                dup_sim, dup_id = picked_anywhere.nearest(vectors[index])
                if max(dup_sim, nearest) >= duplicate_threshold:
                    sim, twin = (dup_sim, dup_id) if dup_sim >= nearest else (nearest, nearest_id)
                    result.skipped.append(
                        Pick(index, _objective(lines[index]), 0.0, sim, twin, ids[index], group)
                    )
                    remaining.remove(index)
                    continue
                score = _objective(lines[index]) - diversity * max(nearest, 0.0)
                if best is None or score > best.score:
                    best = Pick(
                        index,
                        _objective(lines[index]),
                        score,
                        nearest,
                        nearest_id,
                        ids[index],
                        group,
                    )
            if best is None:
                break
            result.picks.append(best)
            taken += 1
            remaining.remove(best.index)
            in_group.add(ids[best.index], vectors[best.index])
            picked_anywhere.add(ids[best.index], vectors[best.index])
    return result


def _objective(line: Mapping[str, Any]) -> float:
    return float(line["metadata"]["objective"])


class _Pool:
    """Vectors picked so far, with their ids, for nearest-neighbour lookups."""

    def __init__(self, ids: list[str], matrix: np.ndarray | None) -> None:
        self.ids = ids
        self.matrix = matrix if matrix is not None and len(ids) else None

    def add(self, sample_id: str, vector: np.ndarray) -> None:
        self.ids.append(sample_id)
        row = vector.reshape(1, -1)
        self.matrix = row if self.matrix is None else np.vstack([self.matrix, row])

    def nearest(self, vector: np.ndarray) -> tuple[float, str | None]:
        if self.matrix is None:
            return 0.0, None
        sims = self.matrix @ vector
        at = int(sims.argmax())
        return float(sims[at]), self.ids[at]
