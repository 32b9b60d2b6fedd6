"""Questions already asked, per culture and topic, so a new sample asks something else.

With several samples per culture and topic, every sample would otherwise get the same question
prompt, and the dataset would hold near-duplicates by construction. The culture expert's
question prompt lists (``avoid_questions``) the questions this run already has for the same
culture and topic — drafts and refinements of its other samples, including those written
before a resume (seeded from ``trajectories.jsonl``) — and the questions of samples earlier
runs accepted into memory.

Samples of one culture and topic run concurrently. Their questions are drafted one at a time
(:meth:`QuestionBook.drafting`), so each draft sees the ones before it; everything else of
those samples (answers, critiques, refinements) stays concurrent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from caredio.memory.store import CulturalMemory

AVOID_LIMIT = 20  # questions listed in the prompt at most: the most recent of this run first


class QuestionBook:
    """This run's questions and memory's accepted ones, per (culture, topic)."""

    def __init__(self, memory: CulturalMemory | None = None, limit: int = AVOID_LIMIT) -> None:
        self.memory = memory
        self.limit = limit
        self._asked: dict[tuple[str, str], dict[str, str]] = {}  # question -> sample id
        self._accepted: dict[tuple[str, str], list[str]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def seed(self, versions: Iterable[dict[str, Any]]) -> QuestionBook:
        """Questions of versions already on disk (a resumed run)."""
        for version in versions:
            if version.get("culture") and version.get("topic"):
                self.add(version["culture"], version["topic"], version["sample_id"],
                         version["question"])
        return self

    def add(self, culture: str, topic: str, sample_id: str, question: str) -> None:
        if question.strip():
            self._asked.setdefault((culture, topic), {}).setdefault(question.strip(), sample_id)

    @contextlib.asynccontextmanager
    async def drafting(self, culture: str, topic: str) -> AsyncIterator[None]:
        """Held while one sample of this culture and topic writes its question."""
        lock = self._locks.setdefault((culture, topic), asyncio.Lock())
        async with lock:
            yield

    def asked(self, culture: str, topic: str, sample_id: str) -> list[str]:
        """This run's questions of the culture and topic but ``sample_id``'s, most recent first."""
        return [q for q, owner in reversed(self._asked.get((culture, topic), {}).items())
                if owner != sample_id]

    def entries(self) -> list[tuple[str, str, str, str]]:
        """(culture, topic, sample id, question) of every question asked, oldest first."""
        return [(culture, topic, owner, question)
                for (culture, topic), asked in self._asked.items()
                for question, owner in asked.items()]

    async def _asked_elsewhere(self, culture: str, topic: str, sample_id: str) -> list[str]:
        return self.asked(culture, topic, sample_id)

    async def earlier(self, culture: str, topic: str, sample_id: str) -> list[str]:
        """Questions a new question for ``sample_id`` must not repeat, most recent first."""
        key = (culture, topic)
        if key not in self._accepted:
            self._accepted[key] = (
                await asyncio.to_thread(self.memory.samples.questions, culture, topic,
                                        self.limit) if self.memory is not None else [])
        mine = await self._asked_elsewhere(culture, topic, sample_id)
        return list(dict.fromkeys([*mine, *self._accepted[key]]))[: self.limit]
