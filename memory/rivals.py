"""What D asks beside the attribution: does a compared culture already say this, and does the
target's own knowledge come near it at all?

Attribution alone cannot tell an answer every compared culture's knowledge holds ("rice") from
one no knowledge holds: both spread evenly. BLEnD's shared answers are the former (validation
split: D AUC 0.656 -> 0.818 with the first question, docs/scorers.md). Invented specifics are
far from every rival too, so D also asks the second (validation split: invented words beat
the honest answer in 9% of cases with the first question alone, 5% with both).
"""

from __future__ import annotations

import numpy as np

from caredio.config.settings import ScoringSettings
from caredio.memory.gate import Scale


def rival_and_own_evidence(claim_sims: dict[str, np.ndarray], masks: dict[str, np.ndarray | None],
                           evidence: dict[str, np.ndarray], vectors: np.ndarray, cultures: list[str],
                           scaled: Scale, slope: float, settings: ScoringSettings) -> tuple[np.ndarray, np.ndarray]:
    """Per segment, in [0, 1]: how far it is from being stated by a compared culture (by its
    nearest rival claim or contrast answer, 0.5 at ``rival_overlap_at``), and how far the
    target's (``cultures[0]``) own knowledge supports it (by its nearest claim, 0.5 at
    ``known_at``, never below ``unknown_share``). D counts the heard segments by their product.

    ``claim_sims``: each segment's cosine to each culture's claims; ``masks``: the columns held
    out of each culture's evidence for this sample; ``evidence``: the contrast answers' vectors.
    ``slope`` 0 turns both off (ones).
    """
    if slope <= 0:
        return np.ones(len(vectors)), np.ones(len(vectors))
    nearest = {}
    for culture in cultures:
        sims = claim_sims[culture]
        mask = masks.get(culture)
        if mask is not None and culture != cultures[0]:
            # A rival's held-out items are not its evidence. The target's own are asked, as the
            # gate asks them: whether its knowledge holds a statement at all is a check of
            # plausibility, not credit (the attribution stays cross-fitted), and without them an
            # honest paraphrase of what was shown looked as unknown as an invented custom.
            sims = np.delete(sims, mask, axis=1)
        closest = scaled(sims.max(axis=1)) if sims.shape[1] else np.full(len(vectors), -np.inf)
        extra = evidence.get(culture)
        if extra is not None and len(extra):
            closest = np.maximum(closest, scaled(vectors @ extra.T).max(axis=1))
        nearest[culture] = closest
    rival = np.max([nearest[c] for c in cultures[1:]], axis=0)
    unshared = falling(rival, settings.rival_overlap_at, slope)
    known = np.maximum(1.0 - falling(nearest[cultures[0]], settings.known_at, slope), settings.unknown_share)
    return unshared, known


def falling(similarity: np.ndarray, midpoint: float, slope: float) -> np.ndarray:
    """1 far below ``midpoint``, 0.5 at it, 0 far above (a logistic curve)."""
    return 1.0 / (1.0 + np.exp(np.clip(slope * (similarity - midpoint), -50, 50)))
