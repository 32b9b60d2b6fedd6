"""The scorers the validation benchmark compares side by side with CAReDiO's own.

* ``NaiveScorer`` — the reference any scorer must beat: share-weighted nearest neighbours over
  the question + answer text. Attribution: the similarity mass of the 10 nearest items per
  culture; R: the annotator-share mean of the target culture's 10 nearest items, weighted by
  similarity.
* ``BackgroundScorer`` — CAReDiO's scorer with the attribution offsets set by background
  normalization instead of the fitted model: each culture's offset cancels its expected
  relevance to other cultures' items.
* ``EmbeddingLRScorer`` — CAReDiO's scorer with attribution by a multinomial logistic
  regression on the item embeddings themselves (scikit-learn, balanced class weights).
* settings variants of ``Scorer`` (``SETTINGS_VARIANTS``), among them the previous release.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from caredio.config.settings import ScoringSettings
from caredio.culture_names import neutralize
from caredio.memory.attribution import Calibration, relevance
from caredio.memory.scoring import Scorer, most_likely
from caredio.memory.store import CulturalMemory

# The scorer as released before the integrity work: no calibration, no claim view, no
# question gate, R = typicality over the 1000 items nearest the question, tau 0.05 in cosine.
PREVIOUS = {"calibrate": False, "claim_view": False, "r_mix": 0.0, "temperature": 0.05 / 0.6,
            "gate_low": -10.0, "gate_high": -9.0, "off_topic_floor": -10.0, "copy_weight": 1.0,
            "r_focus": 0.0, "d_focus": 0.0, "d_margin": 0.0, "r_margin": 0.0, "gate_neighbours": 0,
            "rival_overlap_slope": 0.0}

SETTINGS_VARIANTS: dict[str, dict[str, Any]] = {
    "previous release": PREVIOUS,
    "no calibration": {"calibrate": False},
    "no claim view": {"claim_view": False},
    "no question gate": {"gate_low": -10.0, "gate_high": -9.0, "off_topic_floor": -10.0},
    "gate without claim neighbours": {"gate_neighbours": 0},
    "R: core coverage only": {"r_mix": 1.0},
    "R: typicality only": {"r_mix": 0.0},
    "no focus": {"r_focus": 0.0, "d_focus": 0.0},
    "D: every gated segment": {"d_margin": 0.0},
    "D: no rival discount": {"rival_overlap_slope": 0.0},
}


@dataclass
class NaiveScore:
    representativeness: float
    distinctiveness: float
    objective: float
    attribution: dict[str, float]
    predicted_culture: str


class NaiveScorer:
    """Share-weighted nearest neighbours over "question — answer" (the reference)."""

    def __init__(self, memory: CulturalMemory, k: int = 10) -> None:
        self.memory = memory
        self.k = k

    def warm(self, texts: list[str]) -> None:
        return None

    def score(self, question: str, response: str, culture: str, contrast: list[str],
              contrast_responses: dict[str, str] | None = None) -> NaiveScore:
        matrices = self.memory.matrices()
        cultures = [culture, *[c for c in contrast if c != culture]]
        named = list(matrices)
        text = f"{neutralize(question, named)} — {neutralize(response, named)}" if question else response
        vector = self.memory.embedder.embed([text])[0]
        mass = {}
        representativeness = 0.0
        for name in cultures:
            matrix = matrices[name]
            sims = matrix.embeddings @ vector
            top = np.argsort(-sims)[: self.k]
            mass[name] = float(np.clip(sims[top], 0, None).sum())
            if name == culture:
                weights = np.clip(sims[top], 1e-6, None)
                representativeness = float((matrix.weights[top] * weights).sum() / weights.sum())
        total = sum(mass.values()) or 1.0
        attribution = {name: value / total for name, value in mass.items()}
        distinctiveness = attribution[culture]
        return NaiveScore(representativeness, distinctiveness, (representativeness + distinctiveness) / 2,
                          attribution, most_likely(attribution))


class BackgroundScorer(Scorer):
    """Offsets from background normalization: ``-slope * E[m_c(y)]`` over other cultures' items."""

    def calibration(self) -> Calibration:
        matrices = self.memory.matrices()
        if self._fitted is not None and self._fitted[0] is matrices:
            return self._fitted[1]
        slope = 1.0 / self.settings.temperature
        rng = np.random.default_rng(0)
        offsets = {}
        for culture, matrix in matrices.items():
            foreign = np.concatenate([m.claim_embeddings for c, m in matrices.items() if c != culture])
            picks = foreign[rng.permutation(len(foreign))[:1500]]
            sims = self._scaled(picks @ self._attribution_view(matrix).T)
            m = relevance(sims, matrix.weights, self.settings.top_k, self.settings.max_share)
            offsets[culture] = -slope * float(m.mean())
        calibration = Calibration(slope, offsets, fitted=True)
        self._fitted = (matrices, calibration)
        return calibration


class EmbeddingLRScorer(Scorer):
    """Attribution by logistic regression on the embeddings of the memory's items."""

    def __init__(self, memory: CulturalMemory, settings: ScoringSettings | None = None) -> None:
        super().__init__(memory, settings)
        from sklearn.linear_model import LogisticRegression

        matrices = memory.matrices()
        self.classes = list(matrices)
        features = np.concatenate([m.claim_embeddings for m in matrices.values()])
        labels = np.concatenate([[i] * len(m.ids) for i, m in enumerate(matrices.values())])
        started = time.perf_counter()
        self.model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(features, labels)
        self.fit_seconds = time.perf_counter() - started

    def _logits(self, vectors: np.ndarray, cultures: list[str], views: dict[str, Any],
                evidence: dict[str, np.ndarray], claim_sims: dict[str, np.ndarray]) -> np.ndarray:
        scores = self.model.decision_function(vectors)
        return scores[:, [self.classes.index(c) for c in cultures]]
