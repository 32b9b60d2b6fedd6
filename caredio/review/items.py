"""Knowledge item ids to their texts, for showing evidence (which stores ids only).

Read from the memory the run used (its config's ``memory`` table: a directory or a Chroma
server), without its directory lock: nothing is written, and a run or an ingest may hold the
lock for hours while a reviewer works. Ids it does not hold (an ephemeral memory is gone with
its run) come from the packaged starter pack, whose ids are stable. Answers are cached: a
reviewer moving through a thousand samples asks for the same items again and again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from caredio.errors import CaredioError

log = logging.getLogger(__name__)

CHROMA_FILE = "chroma.sqlite3"  # what makes a directory a Chroma store (never create one here)
KNOWLEDGE = "knowledge"


class ItemTexts:
    """id -> (culture, text) for one run's memory; unknown ids are left out (shown bare)."""

    def __init__(self, memory_config: Mapping[str, Any] | None) -> None:
        config = dict(memory_config or {})
        self.path = config.get("path")
        self.url = config.get("url")
        self._known: dict[str, tuple[str, str]] = {}
        self._asked: set[str] = set()
        self._starter: dict[str, tuple[str, str]] | None = None
        self._client: Any = None
        self._lock = threading.Lock()

    def resolve(self, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        wanted = [i for i in dict.fromkeys(str(i) for i in ids if i)]
        with self._lock:
            missing = [i for i in wanted if i not in self._asked]
            if missing:
                self._fetch(missing)
            return {i: self._known[i] for i in wanted if i in self._known}

    def _fetch(self, ids: list[str]) -> None:
        self._asked.update(ids)
        collection = self._collection()
        if collection is not None:
            try:
                got = collection.get(ids=ids, include=["documents", "metadatas"])
            except CaredioError as exc:  # a Chroma server gone: show ids bare, say why once
                log.warning("item texts: %s", exc)
                self._client = False
            else:
                for item_id, text, meta in zip(got["ids"], got["documents"] or [],
                                               got["metadatas"] or [], strict=True):
                    self._known[str(item_id)] = (str((meta or {}).get("culture", "")), str(text))
        for item_id in ids:
            if item_id not in self._known and item_id in self._starter_pack():
                self._known[item_id] = self._starter_pack()[item_id]

    def _collection(self) -> Any:
        if self._client is False:
            return None
        if self._client is None:
            from caredio.memory.chroma import make_client

            readable = self.url or (self.path and self.path != ":memory:"
                                    and (Path(str(self.path)) / CHROMA_FILE).is_file())
            if not readable:
                self._client = False
                return None
            try:
                self._client = (make_client(url=str(self.url)) if self.url
                                else make_client(path=Path(str(self.path))))
            except CaredioError as exc:
                log.warning("item texts: %s; evidence shows item ids only", exc)
                self._client = False
                return None
        names = {getattr(c, "name", c) for c in self._client.list_collections()}
        return self._client.get_collection(KNOWLEDGE) if KNOWLEDGE in names else None

    def _starter_pack(self) -> dict[str, tuple[str, str]]:
        if self._starter is None:
            from caredio.memory.ingest import starter_pack

            self._starter = {item.id: (item.culture, item.text) for item in starter_pack()}
        return self._starter
