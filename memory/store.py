"""The cultural memory: Chroma collections of knowledge items and accepted samples.

The same code runs embedded (``PersistentClient`` at a path), ephemeral (in-process, for
tests and throwaway runs) or against a Chroma server (``HttpClient`` from a URL). Embeddings
are computed by CAReDiO and passed in; the backend that made them is recorded in each
collection's metadata, and opening a memory with another backend is refused rather than
silently mixing two vector spaces.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from caredio.config.urls import public_url
from caredio.errors import UserInputError
from caredio.memory.chroma import ServerCalls, make_client
from caredio.memory.crossfit import shown_half
from caredio.memory.dirlock import MemoryDirLock
from caredio.memory.embeddings import Embedder
from caredio.memory.items import CultureMatrix, KnowledgeItem, claim_of
from caredio.memory.query_cache import QueryCache
from caredio.memory.samples import AcceptedSamples

log = logging.getLogger(__name__)


KNOWLEDGE = "knowledge"


CLAIMS = "knowledge_claims"


SAMPLES = "samples"


WARM_LIMIT = 2048  # items kept in the embedder cache when added in one call


class CulturalMemory:
    """Knowledge and accepted samples, with embeddings from one backend."""

    def __init__(self, client: Any, embedder: Embedder, label: str = "memory",
                 server: bool = False) -> None:
        self.server = server  # a Chroma server (--memory-url): its calls are ServerCalls
        self.client = ServerCalls(client, label) if server else client
        self.embedder = embedder
        self.label = label
        self._lock = threading.Lock()
        self._matrices: dict[str, CultureMatrix] | None = None
        self._retrieved: QueryCache[KnowledgeItem] = QueryCache()  # grounding repeats per topic
        self._dir_lock: MemoryDirLock | None = None
        self.knowledge = self._collection(KNOWLEDGE)
        self.claims = self._collection(CLAIMS)
        self.samples = AcceptedSamples(self._collection(SAMPLES), embedder)

    @classmethod
    def open(cls, embedder: Embedder, path: str | Path | None = None, url: str | None = None) -> CulturalMemory:
        """A memory on a server (url), in a directory (path, locked for this process), or
        ephemeral."""
        label = public_url(url) if url else (str(path) if path else "ephemeral memory")
        lock = MemoryDirLock.acquire(path) if path and not url else None
        try:
            memory = cls(make_client(path=path, url=url), embedder, label=label, server=bool(url))
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        memory._dir_lock = lock
        return memory

    def close(self) -> None:
        """Let other processes open this memory's directory (it stays usable here until then)."""
        if self._dir_lock is not None:
            self._dir_lock.release()
            self._dir_lock = None

    def _collection(self, name: str) -> Any:
        """A collection of this memory, refused when another embedding backend built it."""
        wanted = {"embedding_backend": self.embedder.backend, "dim": self.embedder.dim,
                  "hnsw:space": "cosine"}
        collection = self.client.get_or_create_collection(name=name, embedding_function=None,
                                                          metadata=wanted)
        if self.server:
            collection = ServerCalls(collection, self.label)
        found = collection.metadata or {}
        if found.get("embedding_backend") != self.embedder.backend:
            raise UserInputError(
                f"{self.label}: collection '{name}' was built with embedding backend "
                f"'{found.get('embedding_backend')}', not '{self.embedder.backend}'; "
                "use a new memory directory or the same backend"
            )
        return collection

    # -- knowledge -------------------------------------------------------------------------

    def add_knowledge(
        self, items: list[KnowledgeItem], batch_size: int = 1024, vectors: np.ndarray | None = None,
        claim_vectors: np.ndarray | None = None,
    ) -> int:
        """Add items not yet stored (by stable id); returns how many were new.

        Embedding runs in batches of ``batch_size`` (one model call each, far faster than one
        text at a time). ``vectors`` may carry precomputed embeddings, row ``i`` for
        ``items[i]`` — they must come from this memory's backend; ``claim_vectors`` likewise for
        the claims of "context — claim" items (embedded here when not given).
        """
        if vectors is not None and len(vectors) != len(items):
            raise ValueError("vectors: one row per item is required")
        given = {item.id: vectors[i] for i, item in enumerate(items)} if vectors is not None else {}
        unique = list({item.id: item for item in items}.values())
        warm = getattr(self.embedder, "warm", None)
        if not given and warm is not None and len(unique) <= WARM_LIMIT:
            # Small packs (the starter pack) recur in every ephemeral memory: embed them once.
            warm([item.text for item in unique])
        new = 0
        limit = min(batch_size, int(self.client.get_max_batch_size()))
        for start in range(0, len(unique), limit):
            batch = unique[start : start + limit]
            ids = [item.id for item in batch]
            existing = set(self.knowledge.get(ids=ids, include=[])["ids"])
            fresh = [item for item in batch if item.id not in existing]
            if not fresh:
                continue
            if given:
                batch_vectors = np.stack([given[item.id] for item in fresh])
            else:
                batch_vectors = self.embedder.embed([item.text for item in fresh])
            self.knowledge.add(
                ids=[item.id for item in fresh],
                documents=[item.text for item in fresh],
                metadatas=[item.metadata() for item in fresh],
                embeddings=batch_vectors.tolist(),
            )
            if claim_vectors is not None:
                rows = {item.id: i for i, item in enumerate(items)}
                with_claims = [item for item in fresh if claim_of(item.text)]
                if with_claims:
                    claim_rows = np.stack([claim_vectors[rows[item.id]] for item in with_claims])
                    self.claims.upsert(ids=[item.id for item in with_claims],
                                       documents=[claim_of(item.text) or "" for item in with_claims],
                                       embeddings=claim_rows.tolist())
            else:
                self._add_claims([(item.id, item.text) for item in fresh])
            new += len(fresh)
        if new:
            with self._lock:
                self._matrices = None
            self._retrieved.invalidate()
        return new

    def _add_claims(self, items: list[tuple[str, str]]) -> int:
        """Embed and store the claim view of the items that have one; returns how many."""
        with_claims = [(item_id, claim) for item_id, text in items if (claim := claim_of(text))]
        limit = int(self.client.get_max_batch_size())
        for start in range(0, len(with_claims), limit):
            batch = with_claims[start : start + limit]
            vectors = self.embedder.embed([claim for _, claim in batch])
            self.claims.upsert(ids=[i for i, _ in batch], documents=[c for _, c in batch],
                               embeddings=vectors.tolist())
        return len(with_claims)

    def count(self) -> int:
        return int(self.knowledge.count())

    def matrices(self) -> dict[str, CultureMatrix]:
        """All knowledge as per-culture arrays, loaded once and refreshed after additions."""
        with self._lock:
            if self._matrices is None:
                self._matrices = self._load_matrices()
            return self._matrices

    def _load_matrices(self) -> dict[str, CultureMatrix]:
        grouped: dict[str, dict[str, list[Any]]] = {}
        total = self.count()
        page = 5000
        for offset in range(0, total, page):
            chunk = self.knowledge.get(include=["documents", "metadatas", "embeddings"],
                                       limit=page, offset=offset)
            for item_id, text, meta, vector in zip(chunk["ids"], chunk["documents"],
                                                   chunk["metadatas"], chunk["embeddings"],
                                                   strict=True):
                group = grouped.setdefault(str(meta["culture"]), {k: [] for k in
                                           ("ids", "texts", "topics", "weights", "vectors", "sources")})
                group["ids"].append(item_id)
                group["texts"].append(text)
                group["topics"].append(str(meta.get("topic", "general")))
                group["weights"].append(float(meta.get("weight", 1.0)))
                group["vectors"].append(vector)
                group["sources"].append(str(meta.get("source", "user")))
        claims = self._load_claims(grouped)
        matrices = {}
        for culture, g in sorted(grouped.items()):
            embeddings = np.asarray(g["vectors"], dtype=np.float32)
            claim_rows = np.array(embeddings)
            for row, item_id in enumerate(g["ids"]):
                if item_id in claims:
                    claim_rows[row] = claims[item_id]
            matrices[culture] = CultureMatrix(
                ids=g["ids"], texts=g["texts"], topics=g["topics"],
                weights=np.asarray(g["weights"], dtype=np.float32), embeddings=embeddings,
                sources=g["sources"], claims=claim_rows,
            )
        return matrices

    def _load_claims(self, grouped: dict[str, dict[str, list[Any]]]) -> dict[str, np.ndarray]:
        """Claim vectors by item id; a memory made before claims were stored gets them now."""
        found: dict[str, np.ndarray] = {}
        total, page = int(self.claims.count()), 5000
        for offset in range(0, total, page):
            chunk = self.claims.get(include=["embeddings"], limit=page, offset=offset)
            found.update(zip(chunk["ids"], np.asarray(chunk["embeddings"], dtype=np.float32), strict=True))
        missing = [(item_id, text) for g in grouped.values()
                   for item_id, text in zip(g["ids"], g["texts"], strict=True)
                   if item_id not in found and claim_of(text)]
        if missing:
            log.info("%s: storing the claim view of %d items (once)", self.label, len(missing))
            self._add_claims(missing)
            stored = self.claims.get(ids=[item_id for item_id, _ in missing], include=["embeddings"])
            found.update(zip(stored["ids"], np.asarray(stored["embeddings"], dtype=np.float32), strict=True))
        return found

    def cultures(self) -> list[str]:
        return list(self.matrices())

    def retrieve(self, culture: str, query: str, k: int, topic: str | None = None) -> list[KnowledgeItem]:
        """The culture's ``k`` items nearest to ``query`` (Chroma query, filtered by metadata).

        Asked again with the same arguments, the same answer without a query until knowledge is
        added here (the items are shared between answers: read them, do not change them).
        """
        return self._retrieved.get((culture, query, k, topic), lambda: self._query(culture, query, k, topic))

    def _query(self, culture: str, query: str, k: int, topic: str | None) -> list[KnowledgeItem]:
        where: dict[str, Any] = {"culture": culture}
        if topic:
            where = {"$and": [where, {"topic": topic}]}
        vector = self.embedder.embed([query])[0].tolist()
        found = self.knowledge.query(query_embeddings=[vector], n_results=k, where=where,
                                     include=["documents", "metadatas"])
        items = [
            KnowledgeItem(culture=str(meta["culture"]), text=text, topic=str(meta["topic"]),
                          weight=float(meta["weight"]), source=str(meta["source"]), id=item_id)
            for item_id, text, meta in zip(found["ids"][0], found["documents"][0],
                                           found["metadatas"][0], strict=True)
        ]
        if topic and len(items) < k:  # a thin topic: fill up with the culture's nearest items
            seen = {item.id for item in items}
            items += [item for item in self._query(culture, query, k, None) if item.id not in seen][: k - len(items)]
        return items

    def grounding(self, culture: str, query: str, k: int, topic: str | None, key: str) -> list[KnowledgeItem]:
        """The items shown to the agents for one sample: about half of the ``2k`` nearest.

        The other half stays unseen, so the sample is scored on knowledge its agents were not
        shown (cross-fitting, docs/design.md 2.2): otherwise J would measure how much of the prompt
        was copied. Which half is fixed by ``key`` (the sample id), so every sample of a topic
        sees its own half and a resumed sample the same one.
        """
        return shown_half(self.retrieve(culture, query, 2 * k, topic), key, k)

    def stats(self) -> dict[str, Any]:
        per_culture: dict[str, dict[str, Any]] = {}
        for culture, matrix in self.matrices().items():
            per_culture[culture] = {
                "items": len(matrix.ids),
                "topics": len(set(matrix.topics)),
                "mean_weight": round(float(matrix.weights.mean()), 3),
                "sources": dict(Counter(matrix.sources)),
            }
        return {
            "memory": self.label,
            "embedding_backend": self.embedder.backend,
            "knowledge_items": self.count(),
            "samples": self.samples.count(),
            "cultures": per_culture,
        }
