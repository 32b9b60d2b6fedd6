"""Representativeness, distinctiveness and the objective, computed from cultural memory.

Definitions (DESIGN.md section 2.2), with ``e`` the unit embedding and ``sim`` the cosine:

* culture relevance ``m_c(x)``: weighted mean of the top-k similarities between ``e(x)`` and
  culture ``c``'s knowledge items;
* distinctiveness ``D = softmax_{c' in {c} u N(c)}(m_c'(r) / tau)[c]``: the probability that the
  response is attributed to the target culture rather than a related one;
* representativeness ``R``: the top-K items of ``c`` relevant to the question; each item's best
  similarity to any sentence of the response, mapped to [0, 1]; the consensus-weighted mean;
* objective ``J = lam * R + (1 - lam) * D``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from caredio.config import ScoringSettings
from caredio.errors import UserInputError
from caredio.memory.store import CultureMatrix, CulturalMemory

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")

# Cosine similarities of MiniLM between unrelated everyday sentences sit near 0.1 and
# paraphrases near 0.8; coverage maps that span linearly onto [0, 1].
COVERAGE_FLOOR = 0.15
COVERAGE_CEIL = 0.75
MISSING_CORE_WEIGHT = 0.6
MISSING_CORE_COVERAGE = 0.5


def split_sentences(text: str) -> list[str]:
    parts = [p.strip() for p in _SENTENCE_END.split(text.strip())]
    return [p for p in parts if len(p) > 2] or ([text.strip()] if text.strip() else [])


@dataclass
class SampleScore:
    culture: str
    representativeness: float
    distinctiveness: float
    objective: float
    attribution: dict[str, float]
    predicted_culture: str
    contrast: list[str]
    generic_sentences: list[str] = field(default_factory=list)
    missing_core: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "culture": self.culture,
            "representativeness": round(self.representativeness, 4),
            "distinctiveness": round(self.distinctiveness, 4),
            "objective": round(self.objective, 4),
            "attribution": {k: round(v, 4) for k, v in self.attribution.items()},
            "predicted_culture": self.predicted_culture,
            "contrast": self.contrast,
        }


class Scorer:
    """Scores samples against one memory; the same code serves the loop and ``caredio score``."""

    def __init__(self, memory: CulturalMemory, settings: ScoringSettings | None = None) -> None:
        self.memory = memory
        self.settings = settings or ScoringSettings()

    # -- contrast sets -----------------------------------------------------------------------

    def contrast_set(self, culture: str, contrast: list[str] | Literal["auto", "all"]) -> list[str]:
        matrices = self.memory.matrices()
        if culture not in matrices:
            raise UserInputError(f"culture '{culture}': no knowledge in {self.memory.label}")
        others = [c for c in matrices if c != culture]
        if contrast == "all":
            return others
        if contrast == "auto":
            target = matrices[culture].centroid
            ranked = sorted(others, key=lambda c: -float(matrices[c].centroid @ target))
            return ranked[: self.settings.contrast_k]
        unknown = [c for c in contrast if c not in matrices]
        if unknown:
            raise UserInputError(f"contrast culture '{unknown[0]}': no knowledge in {self.memory.label}")
        return [c for c in contrast if c != culture]

    # -- scores ------------------------------------------------------------------------------

    def relevance(self, vectors: np.ndarray, matrix: CultureMatrix) -> np.ndarray:
        """``m_c`` for each row of ``vectors``: weighted mean of the top-k similarities."""
        sims = vectors @ matrix.embeddings.T
        k = min(self.settings.top_k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        weights = matrix.weights[top]
        return (top_sims * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)

    def attribution(
        self,
        vectors: np.ndarray,
        cultures: list[str],
        extra_evidence: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Softmax over ``cultures`` of ``m_c / tau``; one row per input vector."""
        matrices = self.memory.matrices()
        columns = []
        for culture in cultures:
            relevance = self.relevance(vectors, matrices[culture])
            evidence = (extra_evidence or {}).get(culture)
            if evidence is not None and len(evidence):
                # A contrast answer is direct evidence of what that culture would say.
                relevance = np.maximum(relevance, (vectors @ evidence.T).max(axis=1))
            columns.append(relevance)
        logits = np.stack(columns, axis=1) / self.settings.temperature
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def score(
        self,
        question: str,
        response: str,
        culture: str,
        contrast: list[str],
        contrast_responses: dict[str, str] | None = None,
    ) -> SampleScore:
        embed = self.memory.embedder.embed
        cultures = [culture, *[c for c in contrast if c != culture]]
        evidence = {
            other: embed([text]) for other, text in (contrast_responses or {}).items()
            if other in cultures[1:] and text.strip()
        }
        response_vector = embed([response])
        probs = self.attribution(response_vector, cultures, evidence)[0]
        attribution = dict(zip(cultures, (float(p) for p in probs), strict=True))
        distinctiveness = attribution[culture]

        sentences = split_sentences(response)
        sentence_vectors = embed(sentences)
        representativeness, missing = self._coverage(question or response, sentence_vectors, culture)
        generic: list[str] = []
        if len(cultures) > 1 and sentences:
            sentence_probs = self.attribution(sentence_vectors, cultures, evidence)[:, 0]
            cutoff = 1.2 / len(cultures)
            generic = [s for s, p in zip(sentences, sentence_probs, strict=True) if p < cutoff]
        lam = self.settings.lam
        return SampleScore(
            culture=culture,
            representativeness=representativeness,
            distinctiveness=distinctiveness,
            objective=lam * representativeness + (1 - lam) * distinctiveness,
            attribution=attribution,
            predicted_culture=max(attribution, key=attribution.__getitem__),
            contrast=cultures[1:],
            generic_sentences=generic,
            missing_core=missing,
        )

    def _coverage(self, query: str, sentence_vectors: np.ndarray, culture: str) -> tuple[float, list[str]]:
        matrix = self.memory.matrices()[culture]
        if not len(sentence_vectors):
            return 0.0, []
        query_vector = self.memory.embedder.embed([query])[0]
        relevance = matrix.embeddings @ query_vector
        k = min(self.settings.coverage_k, len(relevance))
        chosen = np.argsort(-relevance)[:k]
        best = (matrix.embeddings[chosen] @ sentence_vectors.T).max(axis=1)
        coverage = np.clip((best - COVERAGE_FLOOR) / (COVERAGE_CEIL - COVERAGE_FLOOR), 0.0, 1.0)
        weights = matrix.weights[chosen]
        score = float((coverage * weights).sum() / max(float(weights.sum()), 1e-9))
        missing = [
            matrix.texts[i] for i, cov in zip(chosen, coverage, strict=True)
            if matrix.weights[i] >= MISSING_CORE_WEIGHT and cov < MISSING_CORE_COVERAGE
        ]
        return score, missing[:5]
