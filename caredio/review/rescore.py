"""An edited sample scored by the run's own scorer, on save (no second scoring path).

The memory and scorer are opened as the run opened them (caredio/run/job.py: ``open_memory``,
``loop_parts``, so a run with a held-out judge scores on its loop part), from the run's
``config.json``. The knowledge items the agents were shown for the sample stay out of its
evidence, as they did in the run (cross-fitting). Contrast answers answer one question: they
join the evidence only while the question is the one they answered.

A memory directory is opened for one score at a time and closed after it, so a reviewer who
keeps the app open for a week never holds the directory's lock against a run; an ephemeral
memory (``:memory:``) is rebuilt once from the starter pack (what the run elicited from the
model into it is gone with the run, and the note says so).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from caredio.rundir.formats import SegmentEvidence
from caredio.rundir.reader import RunData

log = logging.getLogger(__name__)


@dataclass
class Rescored:
    scores: dict[str, float]
    evidence: list[SegmentEvidence]
    notes: list[str] = field(default_factory=list)


class Rescorer:
    """Scores edits of one run's samples."""

    def __init__(self, run: RunData) -> None:
        from caredio.config.settings import Settings

        self.run = run
        self.settings = Settings(**run.config)
        self._lock = threading.Lock()
        self._kept: tuple[Any, Any] | None = None  # (memory, scorer) of an ephemeral or server memory

    @property
    def ephemeral(self) -> bool:
        memory = self.settings.memory
        return not memory.url and (memory.path or ".caredio/memory") == ":memory:"

    def warm(self) -> None:
        """Load the embedding model now (seconds), not on the reviewer's first save."""
        from caredio.memory.embeddings import embedder_for

        embedder_for(self.settings.memory.embedding, self.settings.memory.embedding_runtime)

    def score(self, question: str, response: str, culture: str, contrast: Sequence[str],
              contrast_answers: Mapping[str, str] | None, exclude_ids: Sequence[str]) -> Rescored:
        notes = []
        if self.ephemeral and any(t.get("sample_id") == "_memory" for t in self.run.turns):
            notes.append("the run's ephemeral memory held knowledge elicited from the model; "
                         "re-scored on the starter pack without it")
        with self._lock:  # one score at a time: one memory, one lock
            _, scorer, done = self._open()
            try:
                score = scorer.score(question, response, culture, list(contrast),
                                     dict(contrast_answers) if contrast_answers else None,
                                     list(exclude_ids))
            finally:
                done()
        scores = {"representativeness": round(score.representativeness, 4),
                  "distinctiveness": round(score.distinctiveness, 4),
                  "objective": round(score.objective, 4)}
        if score.flags:
            notes.append("score flags: " + ", ".join(score.flags))
        # The scorer's per-segment evidence (SampleScore.evidence); a scorer without it gives none.
        evidence = list(getattr(score, "evidence", None) or [])
        return Rescored(scores, evidence, notes)

    def _open(self) -> tuple[Any, Any, Callable[[], None]]:
        from caredio.run.job import load_starter_pack, loop_parts, open_memory

        if self._kept is not None:
            return self._kept[0], self._kept[1], lambda: None
        memory = open_memory(self.settings)
        try:
            if self.ephemeral:  # a directory or server already holds what the run loaded
                load_starter_pack(self.settings, memory)
            _, scorer, _ = loop_parts(self.settings, memory)
        except BaseException:
            memory.close()
            raise
        if self.ephemeral or self.settings.memory.url:  # no directory lock to give back
            self._kept = (memory, scorer)
            return memory, scorer, lambda: None
        return memory, scorer, memory.close
