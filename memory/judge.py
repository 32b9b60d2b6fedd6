"""The held-out judge (docs/design.md 2.4): knowledge the loop never sees, and a scorer on it alone.

Every culture's knowledge is split by item id into the loop's part and the judge's part: an
item belongs to the judge when a hash of its id, read as a number in [0, 1), is below
``judge.split``. The split is a pure function of the id, so the same items go to the judge in
every run, on every machine and after a resume, and knowledge added later (elicited from the
model) splits the same way.

The loop's grounding and its scorer read :class:`MemoryPart` ``"loop"``; :class:`Judge` scores
with the same :class:`~caredio.memory.scoring.Scorer` class on the ``"judge"`` part only —
optionally re-embedded by another backend — without the contrast answers the loop's model wrote
(the judge's evidence is memory alone, the same for every strategy). Gains that show on the
loop's scorer but not on the judge are overfitting to the scorer.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any, Literal, cast

import numpy as np

from caredio.config.settings import JudgeSettings, ScoringSettings
from caredio.errors import UserInputError
from caredio.memory.crossfit import shown_half
from caredio.memory.embeddings import Embedder, embedder_for
from caredio.memory.items import CultureMatrix, KnowledgeItem
from caredio.memory.sample_score import SampleScore
from caredio.memory.scoring import Scorer
from caredio.memory.store import CulturalMemory
from caredio.rundir.formats import JUDGE_SCORES

log = logging.getLogger(__name__)

LOOP: Literal["loop"] = "loop"
JUDGE: Literal["judge"] = "judge"
Part = Literal["loop", "judge"]


def judge_share(item_id: str) -> float:
    """A number in [0, 1) fixed by the id, uniform over ids."""
    return int.from_bytes(hashlib.sha256(item_id.encode()).digest()[:8], "big") / 2.0**64


def in_judge_part(item_id: str, split: float) -> bool:
    return judge_share(item_id) < split


def _rows(matrix: CultureMatrix, keep: np.ndarray) -> CultureMatrix:
    index = np.flatnonzero(keep)
    return CultureMatrix(
        ids=[matrix.ids[i] for i in index], texts=[matrix.texts[i] for i in index],
        topics=[matrix.topics[i] for i in index], weights=matrix.weights[index],
        embeddings=matrix.embeddings[index],
        sources=[matrix.sources[i] for i in index] if matrix.sources else [],
        claims=None if matrix.claims is None else matrix.claims[index],
    )


class MemoryPart:
    """A read-only view of one part of a memory's knowledge.

    It offers what the scorer and the loop's grounding read of a memory — ``matrices()``,
    ``cultures()``, ``embedder``, ``label``, ``retrieve()``, ``grounding()`` — restricted to
    the part's items. The view follows the memory: knowledge added later is split too.
    """

    def __init__(self, memory: CulturalMemory, split: float, part: Part) -> None:
        if not 0.0 < split < 1.0:
            raise ValueError(f"split must be in (0, 1), not {split}")
        self.memory = memory
        self.split = split
        self.part = part
        self._lock = threading.Lock()
        self._source: dict[str, CultureMatrix] | None = None
        self._view: dict[str, CultureMatrix] = {}

    @property
    def embedder(self) -> Embedder:
        return self.memory.embedder

    @property
    def label(self) -> str:
        return f"{self.memory.label} ({self.part} part of judge split {self.split})"

    def contains(self, item_id: str) -> bool:
        return in_judge_part(item_id, self.split) == (self.part == JUDGE)

    def matrices(self) -> dict[str, CultureMatrix]:
        """The part's items per culture; the same dict object until the memory changes (the
        scorer keys its calibration to it)."""
        source = self.memory.matrices()
        with self._lock:
            if self._source is not source:
                view = {}
                for culture, matrix in source.items():
                    keep = np.array([self.contains(i) for i in matrix.ids], dtype=bool)
                    if keep.any():
                        view[culture] = _rows(matrix, keep)
                self._source, self._view = source, view
            return self._view

    def cultures(self) -> list[str]:
        return list(self.matrices())

    def retrieve(self, culture: str, query: str, k: int, topic: str | None = None) -> list[KnowledgeItem]:
        """The part's ``k`` items nearest to ``query`` (topic first, as ``CulturalMemory.retrieve``):
        Chroma's nearest of the whole culture, fetched in growing batches until ``k`` of this
        part are found or the culture has no more."""
        total = len(self.memory.matrices()[culture].ids) if culture in self.memory.matrices() else 0
        fetch = 2 * k + 8
        while True:
            found = [item for item in self.memory.retrieve(culture, query, fetch, topic)
                     if self.contains(item.id)]
            if len(found) >= k or fetch >= total:
                return found[:k]
            fetch *= 2

    def grounding(self, culture: str, query: str, k: int, topic: str | None, key: str) -> list[KnowledgeItem]:
        """As ``CulturalMemory.grounding``, on this part only: half shown, half scores."""
        return shown_half(self.retrieve(culture, query, 2 * k, topic), key, k)

    def counts(self) -> dict[str, int]:
        return {culture: len(matrix.ids) for culture, matrix in self.matrices().items()}


def loop_scorer(memory: CulturalMemory | MemoryPart, scoring: ScoringSettings) -> Scorer:
    """The loop's scorer on a memory or on its loop part. The Scorer reads only ``matrices()``,
    ``cultures()``, ``embedder`` and ``label`` of its memory, which a part provides."""
    return Scorer(cast(CulturalMemory, memory), scoring)


class Judge:
    """The project's scorer on the judge part only, optionally with another embedding backend.

    ``score`` takes no contrast answers and no exclusions: the judge's evidence is its own
    knowledge, which no agent was shown. Thread-safe (the graph scores in worker threads).
    """

    def __init__(self, memory: CulturalMemory, settings: JudgeSettings, scoring: ScoringSettings,
                 embedder: Embedder | None = None) -> None:
        self.part = MemoryPart(memory, settings.split, JUDGE)
        self.settings = settings
        self.scoring = scoring
        if embedder is None and settings.embedding is not None:
            embedder = embedder_for(settings.embedding)
        # Another backend needs the judge's items embedded by it: a memory of their own.
        self.embedder = embedder if embedder is not None and embedder.backend != memory.embedder.backend else None
        self._lock = threading.Lock()
        self._own: CulturalMemory | None = None
        self._scorer: Scorer | None = None
        self._copied: dict[str, CultureMatrix] | None = None

    @property
    def backend(self) -> str:
        return (self.embedder or self.part.embedder).backend

    def scorer(self) -> Scorer:
        with self._lock:
            if self.embedder is None:
                if self._scorer is None:
                    self._scorer = Scorer(cast(CulturalMemory, self.part), self.scoring)
                return self._scorer
            matrices = self.part.matrices()
            if self._copied is not matrices:
                self._refresh_copy(matrices)
            assert self._scorer is not None
            return self._scorer

    def _refresh_copy(self, matrices: dict[str, CultureMatrix]) -> None:
        assert self.embedder is not None
        if self._own is None:
            self._own = CulturalMemory.open(self.embedder)  # ephemeral
            self._scorer = Scorer(self._own, self.scoring)
        items = [KnowledgeItem(culture=culture, text=text, topic=topic, weight=float(weight),
                               source=source, id=item_id)
                 for culture, m in matrices.items()
                 for item_id, text, topic, weight, source in zip(
                     m.ids, m.texts, m.topics, m.weights,
                     m.sources or ["user"] * len(m.ids), strict=True)]
        added = self._own.add_knowledge(items)
        log.info("judge: %d knowledge items embedded with %s", added, self.embedder.backend)
        self._copied = matrices

    def check(self, cultures: list[str]) -> None:
        """Every culture the run scores must keep knowledge on both sides of the split."""
        loop_part = MemoryPart(self.part.memory, self.settings.split, LOOP)
        for culture in cultures:
            for part in (self.part, loop_part):
                if culture not in part.matrices():
                    whole = self.part.memory.matrices()
                    total = len(whole[culture].ids) if culture in whole else 0
                    raise UserInputError(
                        f"judge.split = {self.settings.split}: none of the {total} knowledge items "
                        f"of '{culture}' falls in the {part.part} part; add knowledge or change "
                        "the split")

    def score(self, question: str, response: str, culture: str, contrast: list[str]) -> SampleScore:
        return self.scorer().score(question, response, culture, contrast)

    def describe(self) -> dict[str, Any]:
        """What run.json records of the judge."""
        return {"split": self.settings.split, "embedding_backend": self.backend,
                "items": self.part.counts()}


def judge_fields(score: SampleScore | None) -> dict[str, float]:
    """The judge's scores under their own keys (trajectories and dataset metadata)."""
    if score is None:
        return {}
    values = (score.representativeness, score.distinctiveness, score.objective)
    return {key: round(value, 4) for key, value in zip(JUDGE_SCORES, values, strict=True)}
