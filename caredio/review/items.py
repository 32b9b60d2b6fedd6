"""Knowledge item ids to their texts, for showing evidence (which stores ids only).

The reading itself is :func:`caredio.memory.contents.item_texts` (the run's memory, without its
lock, then the starter pack); this keeps its answers, since a reviewer moving through a thousand
samples asks for the same items again and again, and asks only for ids not asked before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from caredio.errors import CaredioError

log = logging.getLogger(__name__)


class ItemTexts:
    """id -> (culture, text) for one run's memory; unknown ids are left out (shown bare)."""

    def __init__(self, memory_config: Mapping[str, Any] | None) -> None:
        self.config = dict(memory_config or {})
        self._known: dict[str, tuple[str, str]] = {}
        self._asked: set[str] = set()
        self._lock = threading.Lock()

    def resolve(self, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        from caredio.memory.contents import item_texts

        wanted = list(dict.fromkeys(str(i) for i in ids if i))
        with self._lock:
            missing = [i for i in wanted if i not in self._asked]
            if missing:
                self._asked.update(missing)
                try:
                    self._known.update(item_texts(self.config, missing))
                except CaredioError as exc:  # a Chroma server gone: the page shows bare ids
                    log.warning("item texts: %s; evidence shows item ids only", exc)
            return {i: self._known[i] for i in wanted if i in self._known}
