"""Answers to a memory's queries, kept until its knowledge changes.

Every sample of a culture and topic asks the memory the same grounding query, and a run starts
many of them at once: without this, each asked Chroma (~5 ms of CPU per query; 0.45 ms per LLM
call at C=16, benchmarks/orchestration.py). One caller asks, concurrent callers with the same
key wait for its answer, and an answer computed while knowledge was added is not kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class QueryCache(Generic[T]):
    """Answers by key, least recently used dropped past ``limit``; :meth:`invalidate` drops all."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._answers: OrderedDict[Hashable, list[T]] = OrderedDict()
        self._asking: dict[Hashable, threading.Lock] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], list[T]]) -> list[T]:
        """The kept answer for ``key``, or ``compute()``'s (kept). A new list each time: the
        elements are shared between callers, the list is the caller's."""
        with self._lock:
            if (kept := self._kept(key)) is not None:
                return kept
            asking = self._asking.setdefault(key, threading.Lock())
        with asking:
            with self._lock:
                if (kept := self._kept(key)) is not None:
                    return kept
                generation = self._generation
            try:
                answer = compute()
            except BaseException:
                with self._lock:  # a failed query leaves no lock behind; the next caller asks again
                    self._asking.pop(key, None)
                raise
            with self._lock:
                if generation == self._generation:  # nothing changed while it was computed
                    self._answers[key] = answer
                    if len(self._answers) > self.limit:
                        self._answers.popitem(last=False)
                self._asking.pop(key, None)  # with the answer kept, so no caller asks again meanwhile
        return list(answer)

    def invalidate(self) -> None:
        with self._lock:
            self._answers.clear()
            self._generation += 1

    def _kept(self, key: Hashable) -> list[T] | None:
        answer = self._answers.get(key)
        if answer is None:
            return None
        self._answers.move_to_end(key)
        return list(answer)
