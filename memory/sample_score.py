"""The score of one sample, and the record a score is computed in (memory/scoring.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from caredio.memory.crossfit import CultureView
from caredio.memory.items import CultureMatrix


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
    # Per segment of the response, in order: why it scored as it did (memory/evidence.py);
    # empty when scoring.explain is off or the answer is blank.
    evidence: list[dict[str, Any]] = field(default_factory=list)

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


@dataclass
class ScoreWork:
    """One sample's score as it is computed: each stage of :meth:`Scorer.score` reads what the
    earlier ones left here and adds its own (per segment, rows in segment order)."""

    cultures: list[str]  # the target first
    matrices: dict[str, CultureMatrix]
    question: str  # names neutralized
    segments: list[str]
    evidence_texts: dict[str, list[str]]  # compared culture -> its contrast answer's segments
    query: np.ndarray | None = None
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    evidence: dict[str, np.ndarray] = field(default_factory=dict)
    excluded: set[str] = field(default_factory=set)
    target: Any = None  # the target's CultureMatrix
    shown_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    views: dict[str, CultureView] = field(default_factory=dict)
    pools: dict[str, np.ndarray] = field(default_factory=dict)
    cores: dict[str, np.ndarray] = field(default_factory=dict)
    all_sims: np.ndarray | None = None
    claim_sims: dict[str, np.ndarray] = field(default_factory=dict)
    relevance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gate: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stated: np.ndarray = field(default_factory=lambda: np.zeros(0))
    copied: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    best_relevance: float = 0.0
    focus: float = 1.0
    logits: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    unshared: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # What the per-segment evidence needs besides (memory/evidence.py): the response as given,
    # its segments as split (before repeats were dropped), the ones left unique, which of those
    # were kept (not near-repeats), and the weights R and D heard each kept segment with.
    response: str = ""
    named: list[str] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    unique: list[str] = field(default_factory=list)
    kept: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    counted: np.ndarray = field(default_factory=lambda: np.zeros(0))
    heard: np.ndarray = field(default_factory=lambda: np.zeros(0))
    known: np.ndarray = field(default_factory=lambda: np.zeros(0))


def degenerate(culture: str, cultures: list[str], flag: str) -> SampleScore:
    return SampleScore(culture=culture, representativeness=0.0, distinctiveness=0.0, objective=0.0,
                       attribution=dict.fromkeys(cultures, 0.0), predicted_culture="",
                       contrast=cultures[1:], flags=[flag])
