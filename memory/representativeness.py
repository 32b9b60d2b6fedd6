"""Representativeness: how much of the culture's consensus on the question an answer expresses.

``R = coverage * focus ** r_focus`` (the Scorer raises the focus to its power): coverage mixes
the consensus-weighted coverage of the question's core with the typicality of what the answer
says; focus is the share of the answer the question's knowledge supports. docs/scorers.md says
why each part is there and what it was measured against.
"""

from __future__ import annotations

import numpy as np

from caredio.config.settings import ScoringSettings
from caredio.memory.gate import Scale
from caredio.memory.items import CultureMatrix

# The critic hears of an item as missing when most annotators or sources agree on it and no
# segment comes halfway to saying it.
MISSING_CORE_WEIGHT = 0.6
MISSING_CORE_COVERAGE = 0.5


def coverage_and_focus(vectors: np.ndarray, gate: np.ndarray, counted: np.ndarray, stated: np.ndarray,
                       matrix: CultureMatrix, pool: np.ndarray, core: np.ndarray, settings: ScoringSettings,
                       scaled: Scale) -> tuple[float, float]:
    """``R``: consensus coverage of the question's core, mixed with the consensus typicality
    of what the answer says on the question.

    Core coverage (docs/design.md 2.2): the consensus-weighted mean coverage of the ``core_k``
    items most relevant to the question. Typicality: among the culture's items relevant to
    the question (the pool), the ``coverage_k`` best expressed, each consensus weight x
    coverage; the mean. Both count a segment only by ``counted`` (its gate weight times how
    near it is to the answer's most relevant segment), so an off-topic sentence adds to
    neither. ``r_mix`` sets the mix (1 = core coverage only).
    Returns that coverage-based part and the answer's focus (below); ``R`` is their product.
    """
    if not core.size or gate.sum() <= 0.0:
        return 0.0, 1.0
    coverage = np.clip(scaled(vectors @ matrix.embeddings[pool].T), 0.0, 1.0)
    best = (coverage * counted[:, None]).max(axis=0)
    weights = matrix.weights[pool]
    n_core = len(core)  # the pool starts with the core: both are ordered by relevance
    core_part = float((best[:n_core] * weights[:n_core]).sum() / weights[:n_core].sum())
    k = min(settings.coverage_k, len(pool))
    expressed = np.argsort(-best)[:k]
    typical_part = float((best[expressed] * weights[expressed]).sum() / k)
    mix = settings.r_mix
    recall = mix * core_part + (1 - mix) * typical_part
    # Coverage only grows as segments are added, so on its own it pays for padding that
    # the gate cannot tell from an answer (bare words all look alike to it). Focus is the
    # precision side: the counted share of the answer that the question's knowledge
    # supports — a segment fully when it covers a relevant item at least ``focus_ratio`` as
    # well as the answer's best-supported segment does (a one-segment answer has focus 1).
    # Relative, not absolute: the pool is broad, so culture trivia covers some item in it.
    support = coverage.max(axis=1)
    # The yardstick is the best-supported segment the answer states on the question,
    # copies included (``stated``): dropping a copy's credit must not lower the bar.
    enough = settings.focus_ratio * float(support[stated > 0].max())
    if enough <= 0.0:
        return recall, 1.0
    focus = float((gate * np.minimum(support / enough, 1.0)).sum() / gate.sum())
    return recall, focus


def missing_core(vectors: np.ndarray, matrix: CultureMatrix, query: np.ndarray | None,
                 shown_rows: np.ndarray | None, settings: ScoringSettings, scaled: Scale) -> list[str]:
    """High-consensus items on the question that no segment expresses, for the critic.

    Drawn from the items the agents were shown (``shown_rows``; ``None`` when nothing was
    held out): naming an unseen item here would hand the refiner the very evidence that scores
    it.
    """
    candidates = shown_rows if shown_rows is not None else np.arange(len(matrix.ids))
    if not candidates.size or not len(vectors):
        return []
    if query is not None:
        candidates = candidates[np.argsort(-(matrix.embeddings[candidates] @ query))]
    candidates = candidates[: settings.core_k]
    coverage = np.clip(scaled(vectors @ matrix.embeddings[candidates].T), 0.0, 1.0).max(axis=0)
    return [matrix.texts[i] for i, cov in zip(candidates, coverage, strict=True)
            if matrix.weights[i] >= MISSING_CORE_WEIGHT and cov < MISSING_CORE_COVERAGE][:5]
