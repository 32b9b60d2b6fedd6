"""Representativeness, distinctiveness and the objective, computed from cultural memory.

Definitions (DESIGN.md section 2.2), with ``e`` the unit embedding and ``sim`` the cosine:

* culture relevance ``m_c(x)``: a mix of the best similarity between ``e(x)`` and culture
  ``c``'s knowledge items and the consensus-weighted mean of the top-k similarities;
* distinctiveness ``D = softmax_{c' in {c} u N(c)}(m_c'(r) / tau)[c]``: the probability that the
  response is attributed to the target culture rather than a related one. A response is split
  into segments (sentences; the items of a short list) and the segments' log-probabilities
  are averaged, so each claim votes;
* representativeness ``R``: among the items of ``c`` relevant to the question, the K items the
  response expresses best, each contributing consensus weight x coverage (similarity mapped to
  [0, 1]); the mean. High when the answer says what most of the culture's annotators said;
* objective ``J = lam * R + (1 - lam) * D``.

The knobs (k, tau, K, the max/mean mix, list splitting) were tuned on BLEnD's memory part only;
``benchmarks/scorer_validation.py`` measures them on held-out questions (docs/scorers.md).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from caredio.config import ScoringSettings
from caredio.errors import UserInputError
from caredio.memory.store import CulturalMemory, CultureMatrix

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_LIST_SEP = re.compile(r"\s*[,;、，；]\s*")
LIST_ITEM_WORDS = 6

# Cosine similarities of MiniLM between unrelated everyday sentences sit near 0.1 and
# paraphrases near 0.8; coverage maps that span linearly onto [0, 1].
COVERAGE_FLOOR = 0.15
COVERAGE_CEIL = 0.75
MISSING_CORE_WEIGHT = 0.6
MISSING_CORE_COVERAGE = 0.5


def split_sentences(text: str) -> list[str]:
    parts = [p.strip() for p in _SENTENCE_END.split(text.strip())]
    return [p for p in parts if len(p) > 2] or ([text.strip()] if text.strip() else [])


def split_segments(text: str) -> list[str]:
    """Sentences, and a sentence that is a list of short items split into its items.

    One embedding of "kimchi, bulgogi, soju." blurs three claims into one vector that is close
    to no knowledge item; three embeddings each find their own evidence. Only lists of short
    items (at most ``LIST_ITEM_WORDS`` words each) are split, so ordinary prose stays whole.
    """
    segments: list[str] = []
    for sentence in split_sentences(text):
        parts = [p.strip(" .!?") for p in _LIST_SEP.split(sentence)]
        parts = [p for p in parts if p]
        if len(parts) > 1 and all(len(p.split()) <= LIST_ITEM_WORDS for p in parts):
            segments += parts
        else:
            segments.append(sentence)
    return segments


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
        self._stack: tuple[Any, np.ndarray, dict[str, slice]] | None = None

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
        """``m_c`` for each row of ``vectors``.

        A mix of the single nearest item (sharp: one exact match of a culture's answer is
        strong evidence) and the consensus-weighted mean of the top-k (robust: a free-form
        sentence rarely has one exact counterpart). ``max_share`` sets the mix.
        """
        return self._relevance_from(vectors @ matrix.embeddings.T, matrix.weights)

    def _relevance_from(self, sims: np.ndarray, item_weights: np.ndarray) -> np.ndarray:
        k = min(self.settings.top_k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        weights = item_weights[top]
        mean = (top_sims * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        share = self.settings.max_share
        return share * top_sims.max(axis=1) + (1.0 - share) * mean

    def _stacked(self) -> tuple[np.ndarray, dict[str, slice]]:
        """All cultures' embeddings in one matrix: one matrix product per call instead of one per
        culture (many small BLAS calls are slow, the more so on a busy machine)."""
        matrices = self.memory.matrices()
        if self._stack is None or self._stack[0] is not matrices:
            spans, start = {}, 0
            for culture, matrix in matrices.items():
                spans[culture] = slice(start, start + len(matrix.ids))
                start += len(matrix.ids)
            stacked = np.concatenate([m.embeddings for m in matrices.values()]) if matrices else np.zeros((0, 1))
            self._stack = (matrices, stacked, spans)
        return self._stack[1], self._stack[2]

    def _logits(
        self, vectors: np.ndarray, cultures: list[str], evidence: dict[str, np.ndarray] | None
    ) -> np.ndarray:
        matrices = self.memory.matrices()
        stacked, spans = self._stacked()
        sims = vectors @ stacked.T
        columns = []
        for culture in cultures:
            relevance = self._relevance_from(sims[:, spans[culture]], matrices[culture].weights)
            extra = (evidence or {}).get(culture)
            if extra is not None and len(extra):
                # A contrast answer is direct evidence of what that culture would say.
                relevance = np.maximum(relevance, (vectors @ extra.T).max(axis=1))
            columns.append(relevance)
        return np.stack(columns, axis=1) / self.settings.temperature

    def attribution(
        self,
        vectors: np.ndarray,
        cultures: list[str],
        extra_evidence: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Softmax over ``cultures`` of ``m_c / tau``; one row per input vector."""
        return _softmax(self._logits(vectors, cultures, extra_evidence))

    def pooled_attribution(
        self,
        vectors: np.ndarray,
        cultures: list[str],
        extra_evidence: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """One distribution for a response made of several segments.

        Each segment is attributed on its own and the log-probabilities are averaged (a
        geometric mean), so every claim in the answer votes, and a claim that fits all
        cultures equally leaves the vote to the claims that do not.
        """
        return _pool(self._logits(vectors, cultures, extra_evidence))

    def score(
        self,
        question: str,
        response: str,
        culture: str,
        contrast: list[str],
        contrast_responses: dict[str, str] | None = None,
    ) -> SampleScore:
        """R, D, J, attribution and the critic's diagnosis of one sample."""
        with _one_blas_thread():
            return self._score(question, response, culture, contrast, contrast_responses)

    def _score(
        self,
        question: str,
        response: str,
        culture: str,
        contrast: list[str],
        contrast_responses: dict[str, str] | None = None,
    ) -> SampleScore:
        embed = self.memory.embedder.embed
        cultures = [culture, *[c for c in contrast if c != culture]]
        split = split_segments if self.settings.split_lists else split_sentences
        evidence = {
            other: embed(split(text)) for other, text in (contrast_responses or {}).items()
            if other in cultures[1:] and text.strip()
        }
        segments = split(response) or [response]
        vectors = embed(segments)
        logits = self._logits(vectors, cultures, evidence)  # one product, used twice below
        probs = _pool(logits)
        attribution = dict(zip(cultures, (float(p) for p in probs), strict=True))
        distinctiveness = attribution[culture]

        representativeness, missing = self._coverage(question or response, vectors, culture)
        generic: list[str] = []
        if len(cultures) > 1:
            segment_probs = _softmax(logits)[:, 0]
            cutoff = 1.2 / len(cultures)
            generic = [s for s, p in zip(segments, segment_probs, strict=True) if p < cutoff]
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

    def warm(self, texts: list[str]) -> None:
        """Embed every text a batch of samples will need in large batches (when supported)."""
        warm = getattr(self.memory.embedder, "warm", None)
        if warm is None:
            return
        split = split_segments if self.settings.split_lists else split_sentences
        needed: list[str] = []
        for text in texts:
            needed += [text, *split(text)]
        warm(needed)

    def _coverage(self, query: str, vectors: np.ndarray, culture: str) -> tuple[float, list[str]]:
        """``R``: how much of the culture's consensus the response expresses, on the question.

        Among the culture's ``coverage_pool`` items most relevant to the question, the
        ``coverage_k`` items best expressed by some segment of the response each contribute
        consensus weight x coverage; R is their mean. An answer agreeing with what most
        annotators said matches high-weight items and scores high; a fringe answer matches
        only low-weight ones. Missing core: high-weight items relevant to the question that no
        segment covers.
        """
        matrix = self.memory.matrices()[culture]
        if not len(vectors):
            return 0.0, []
        query_vector = self.memory.embedder.embed([query])[0]
        relevance = matrix.embeddings @ query_vector
        pool = np.argsort(-relevance)[: self.settings.coverage_pool]
        best = (matrix.embeddings[pool] @ vectors.T).max(axis=1)
        coverage = np.clip((best - COVERAGE_FLOOR) / (COVERAGE_CEIL - COVERAGE_FLOOR), 0.0, 1.0)
        k = min(self.settings.coverage_k, len(pool))
        expressed = np.argsort(-coverage)[:k]
        score = float((coverage[expressed] * matrix.weights[pool][expressed]).sum() / k)
        core = pool[: self.settings.coverage_k]
        missing = [
            matrix.texts[i] for i, cov in zip(core, coverage[: len(core)], strict=True)
            if matrix.weights[i] >= MISSING_CORE_WEIGHT and cov < MISSING_CORE_COVERAGE
        ]
        return score, missing[:5]


_controller: Any = None


def _one_blas_thread() -> Any:
    """Scoring is many small matrix products: a second BLAS thread only adds hand-offs, and on
    a busy machine spinning BLAS threads made them 10x slower. Limited for the call only; the
    embedding model (torch) keeps its own threads. A no-op without threadpoolctl."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        except ImportError:
            _controller = False
    return _controller.limit(limits=1, user_api="blas") if _controller else contextlib.nullcontext()


def _pool(logits: np.ndarray) -> np.ndarray:
    """Average the rows' log-softmax and renormalize: a geometric mean of the distributions."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return _softmax(log_probs.mean(axis=0, keepdims=True))[0]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(shifted)
    return probs / probs.sum(axis=-1, keepdims=True)
