"""Cross-fitting (docs/design.md 2.2, scorer integrity): the knowledge shown to a sample's agents is
not the evidence that scores it.

For grounding, about half of the items nearest to a sample's topic are shown to its agents
(:func:`shown_half`); the scorer leaves the shown ones out of its evidence, and with them each
compared culture's nearest item to every one (:class:`HeldOut`), and sees every culture through
a :class:`CultureView` without its held-out items.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from caredio.config.settings import ScoringSettings
from caredio.memory.gate import Scale
from caredio.memory.items import CultureMatrix, KnowledgeItem


def shown_half(candidates: list[KnowledgeItem], key: str, k: int) -> list[KnowledgeItem]:
    """About half of ``candidates`` (at most ``k``), chosen by a hash of ``key`` and item id."""
    shown = [item for item in candidates
             if hashlib.sha1(f"{key}\x1f{item.id}".encode()).digest()[0] % 2 == 0]
    return shown[:k]


class HeldOut:
    """What each compared culture's evidence leaves out for one sample (the scorer's side of
    cross-fitting), with every (shown item, compared culture) -> that culture's nearest item
    kept for the memory as loaded: a sample is scored every round with the same shown items."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled  # ScoringSettings.hold_out_rivals
        self._known: tuple[Any, dict[tuple[str, str], str]] | None = None

    def held_out(self, matrices: dict[str, CultureMatrix], culture: str, cultures: list[str],
                 excluded: set[str], shown_rows: np.ndarray) -> dict[str, set[str]]:
        """The ids each compared culture's evidence leaves out: the target's shown items and,
        with ``hold_out_rivals``, each compared culture's nearest item to every one of them.

        Holding out the target's shown items alone takes from an honest answer exactly the
        evidence it was written from while the compared cultures keep theirs, so what it
        shares with them tips D their way, and a vague answer, which matched nothing in
        particular, ties it (starter pack: +0.004 on average, 1 of 4 cases by +0.025; with the
        counterparts held out as well −0.053, none).
        """
        held_out: dict[str, set[str]] = {c: set() for c in cultures}
        held_out[culture] = excluded
        target = matrices[culture]
        shown = shown_rows.tolist()
        if not shown or not self.enabled:
            return held_out
        if self._known is None or self._known[0] is not matrices:
            self._known = (matrices, {})
        known = self._known[1]
        for rival in cultures[1:]:
            matrix = matrices[rival]
            if not len(matrix.ids):
                continue
            missing = [i for i in shown if (target.ids[i], rival) not in known]
            if missing:
                # At 25,000 items this product costs about as much as the rest of a score.
                nearest = np.argmax(target.embeddings[missing] @ matrix.embeddings.T, axis=1)
                known.update({(target.ids[i], rival): matrix.ids[j] for i, j in zip(missing, nearest, strict=True)})
            held_out[rival] = {known[(target.ids[i], rival)] for i in shown}
        return held_out


class CultureView:
    """One culture's items as one sample sees them: without the items shown to its agents."""

    def __init__(self, matrix: CultureMatrix, excluded: set[str], settings: ScoringSettings,
                 scaled: Scale) -> None:
        self.matrix = matrix
        self.settings = settings
        self.scaled = scaled
        hidden = [i for i, item_id in enumerate(matrix.ids) if item_id in excluded] if excluded else []
        self.mask = np.asarray(hidden, dtype=int) if hidden else None
        self._relevance: tuple[np.ndarray | None, np.ndarray] | None = None

    def pool(self, query: np.ndarray | None, hidden_too: bool = False) -> np.ndarray:
        """Indices of the items relevant to the question, most relevant first."""
        settings = self.settings
        if self._relevance is None or self._relevance[0] is not query:
            # Asked twice per sample (with and without the hidden items): one product.
            self._relevance = (query, self.scaled(self.matrix.embeddings @ query) if query is not None
                               else np.ones(len(self.matrix.ids), dtype=np.float32))
        relevance_to_question = self._relevance[1]
        if self.mask is not None and not hidden_too:
            relevance_to_question = relevance_to_question.copy()
            relevance_to_question[self.mask] = -np.inf
        size = min(settings.coverage_pool, len(relevance_to_question))
        # A partial sort: a large culture has far more items than the pool holds.
        if query is None or not size:
            order = np.flatnonzero(np.isfinite(relevance_to_question))[:size]
        else:
            top = np.argpartition(-relevance_to_question, size - 1)[:size]
            order = top[np.argsort(-relevance_to_question[top], kind="stable")]
        return order[relevance_to_question[order] >= settings.relevance_floor]
