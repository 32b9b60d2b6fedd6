"""What memory holds, item by item: a knowledge item, its stable id and claim view, and one
culture's knowledge as arrays for scoring.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CLAIM_SEPARATOR = " — "


@dataclass
class KnowledgeItem:
    culture: str
    text: str
    topic: str = "general"
    weight: float = 1.0
    source: str = "user"
    id: str = ""
    # The id of the dataset question the item answers (BLEnD's "Al-en-01"), so an evaluation
    # can leave that question out; empty when unknown (older memories: matched by text).
    question_id: str = ""
    # Knowledge from human review (source "human", caredio/review/feedback.py): who wrote or
    # confirmed it, and the run whose sample it was.
    reviewer: str = ""
    run_id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = stable_id(self.culture, self.topic, self.text)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"culture": self.culture, "topic": self.topic,
                                "weight": float(self.weight), "source": self.source}
        if self.question_id:
            meta["question_id"] = self.question_id
        for key in ("reviewer", "run_id"):
            if getattr(self, key):
                meta[key] = getattr(self, key)
        return meta


def accepted_id(run_id: str, sample_id: str) -> str:
    """The id of an accepted sample in memory: unique across runs."""
    return f"{run_id}/{sample_id}"


def claim_of(text: str) -> str | None:
    """The claim of an item written "context — claim" (the BLEnD importer writes its items so).

    A short answer ("injera") is far from "What do people eat at weddings? — injera" because the
    context dominates that embedding; the claim alone matches it. Scorers compare a response
    with both views of such an item. ``None`` when the item has no separate claim.
    """
    head, sep, tail = text.partition(CLAIM_SEPARATOR)
    return tail.strip() if sep and head.strip() and tail.strip() else None


def stable_id(*parts: str) -> str:
    """Same content, same id: re-ingesting a file adds nothing twice."""
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:20]


@dataclass
class CultureMatrix:
    """One culture's knowledge as arrays, for scoring without a round trip per item."""

    ids: list[str]
    texts: list[str]
    topics: list[str]
    weights: np.ndarray
    embeddings: np.ndarray
    sources: list[str] = field(default_factory=list)
    # The claim view of each item (see ``claim_of``); the full embedding where it has none.
    claims: np.ndarray | None = None

    @property
    def claim_embeddings(self) -> np.ndarray:
        return self.embeddings if self.claims is None else self.claims

    @property
    def centroid(self) -> np.ndarray:
        mean = self.embeddings.mean(axis=0)
        return mean / (np.linalg.norm(mean) or 1.0)


CULTURE_ALIASES = {
    "us": "United States", "usa": "United States", "united states of america": "United States",
    "uk": "United Kingdom", "great britain": "United Kingdom", "south_korea": "South Korea",
    "korea": "South Korea", "republic of korea": "South Korea", "prc": "China",
}


def canonical_culture(name: str) -> str:
    """One spelling per culture, so 'US', 'USA' and 'United States' share their knowledge."""
    cleaned = " ".join(name.replace("_", " ").split())
    return CULTURE_ALIASES.get(cleaned.lower(), CULTURE_ALIASES.get(name.lower(), cleaned))
