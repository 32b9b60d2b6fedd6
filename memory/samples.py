"""Accepted samples in memory: what earlier runs kept, so later runs and selection can avoid
near-duplicates of it and the culture expert can be told which questions were asked.

Reviewed samples come here too (``memory ingest --from-review``), marked with the decision
(``reviewed``: accept, edit or reject). A rejected one stays among the samples selection
compares against (a near-copy of a rejected answer is never selected), but its question is not
listed as asked: a rejected sample covered nothing."""

from __future__ import annotations

from typing import Any

import numpy as np

from caredio.conversation import sample_text
from caredio.memory.embeddings import Embedder
from caredio.memory.items import accepted_id

REJECTED = "reject"
REVIEW_FIELDS = ("reviewed", "reviewer", "reason")  # set by memory ingest --from-review


def _metadata(record: dict[str, Any]) -> dict[str, Any]:
    meta = {k: record[k] for k in ("sample_id", "culture", "topic", "run_id", "question",
                                    "objective", "representativeness", "distinctiveness")}
    meta.update({k: str(record[k]) for k in REVIEW_FIELDS if record.get(k)})
    return meta


class AcceptedSamples:
    """The ``samples`` collection of a memory."""

    def __init__(self, collection: Any, embedder: Embedder) -> None:
        self.collection = collection
        self.embedder = embedder

    def count(self) -> int:
        return int(self.collection.count())

    def add(self, records: list[dict[str, Any]]) -> None:
        """Stored as ``run_id/sample_id``: sample ids repeat from run to run (culture-topic-index),
        and every run's accepted samples must stay. Accepting a run again replaces its own."""
        if not records:
            return
        texts = [sample_text(r["question"], r["response"]) for r in records]
        vectors = self.embedder.embed(texts)
        self.collection.upsert(
            ids=[accepted_id(r["run_id"], r["sample_id"]) for r in records],
            documents=texts,
            embeddings=vectors.tolist(),
            metadatas=[_metadata(r) for r in records],
        )

    def questions(self, culture: str, topic: str, limit: int) -> list[str]:
        """Questions of samples accepted for this culture and topic (by any run)."""
        found = self.collection.get(where={"$and": [{"culture": culture}, {"topic": topic}]},
                                    include=["metadatas"])
        return [str(meta["question"]) for meta in found["metadatas"]
                if meta.get("question") and meta.get("reviewed") != REJECTED][:limit]

    def embeddings(self, exclude_run: str | None = None) -> tuple[list[str], np.ndarray]:
        """Ids and vectors of the accepted samples (all runs', or all but ``exclude_run``'s)."""
        where = {"run_id": {"$ne": exclude_run}} if exclude_run else None
        found = self.collection.get(where=where, include=["embeddings"])
        vectors = np.asarray(found["embeddings"], dtype=np.float32).reshape(-1, self.embedder.dim)
        return list(found["ids"]), vectors
