"""The state a run's Ray workers share, kept in one place: request permits and questions.

:class:`RunCoordinator` runs as one Ray actor per run (caredio/ray_executor.py). It holds the
run's single :class:`RequestLimiter` — the request limit, requests per minute and the 429
pause stay global to the run, whatever the number of workers — and the run's question book
with its per-(culture, topic) drafting turn, so samples of one culture and topic on different
workers still draft one at a time and see each other's questions.

Everything a worker takes is held in the name of a *holder* (one attempt at one sample). When
a worker dies, the driver releases its holders: a killed worker never keeps a permit or a
drafting turn. Plain asyncio, so it is tested without Ray.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from caredio.llm.limits import RequestLimiter
from caredio.memory.questions import QuestionBook

Key = tuple[str, str]


class HolderReleased(Exception):
    """The holder was released (its worker died) while it waited: nothing was granted."""


class RunCoordinator:
    def __init__(self, concurrency: int, requests_per_minute: float | None = None,
                 asked: list[tuple[str, str, str, str]] | None = None) -> None:
        self.limiter = RequestLimiter(concurrency, requests_per_minute)
        self.permits: Counter[str] = Counter()
        self.released: set[str] = set()
        self.questions = QuestionBook()
        for culture, topic, sample_id, question in asked or []:
            self.questions.add(culture, topic, sample_id, question)
        self._turns: dict[Key, asyncio.Lock] = {}
        self._turn_holders: dict[Key, str] = {}

    # -- request permits ---------------------------------------------------------------------

    async def acquire(self, holder: str) -> None:
        await self.limiter.__aenter__()
        if holder in self.released:  # its worker died while it waited
            await self.limiter.__aexit__()
            raise HolderReleased(holder)
        self.permits[holder] += 1

    async def release(self, holder: str) -> None:
        if self.permits[holder] > 0:
            self.permits[holder] -= 1
            await self.limiter.__aexit__()

    def pause(self, seconds: float) -> None:
        """A 429 with Retry-After seen by any worker pauses every worker's new requests."""
        self.limiter.pause(seconds)

    # -- questions ---------------------------------------------------------------------------

    async def begin_draft(self, culture: str, topic: str, holder: str) -> None:
        key = (culture, topic)
        lock = self._turns.setdefault(key, asyncio.Lock())
        await lock.acquire()
        if holder in self.released:
            lock.release()
            raise HolderReleased(holder)
        self._turn_holders[key] = holder

    def end_draft(self, culture: str, topic: str, holder: str) -> None:
        key = (culture, topic)
        if self._turn_holders.get(key) == holder:
            del self._turn_holders[key]
            self._turns[key].release()

    def add_question(self, culture: str, topic: str, sample_id: str, question: str) -> None:
        self.questions.add(culture, topic, sample_id, question)

    def asked(self, culture: str, topic: str, sample_id: str) -> list[str]:
        return self.questions.asked(culture, topic, sample_id)

    # -- dead workers ------------------------------------------------------------------------

    async def release_holder(self, holder: str) -> int:
        """Give back everything ``holder`` took; returns the permits released."""
        self.released.add(holder)
        count = self.permits.pop(holder, 0)
        for _ in range(count):
            await self.limiter.__aexit__()
        for key, owner in list(self._turn_holders.items()):
            if owner == holder:
                self.end_draft(*key, holder)
        return count

    def stats(self) -> dict[str, Any]:
        return {"in_flight": self.limiter.in_flight, "max_in_flight": self.limiter.max_in_flight,
                "permits_held": sum(self.permits.values())}
