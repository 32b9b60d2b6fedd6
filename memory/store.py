"""The cultural memory: Chroma collections of knowledge items and accepted samples.

The same code runs embedded (``PersistentClient`` at a path), ephemeral (in-process, for
tests and throwaway runs) or against a Chroma server (``HttpClient`` from a URL). Embeddings
are computed by CAReDiO and passed in; the backend that made them is recorded in each
collection's metadata, and opening a memory with another backend is refused rather than
silently mixing two vector spaces.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from caredio.config.urls import public_url
from caredio.conversation import sample_text
from caredio.errors import ServiceLost, ServiceUnreachable, UserInputError
from caredio.memory.dirlock import MemoryDirLock
from caredio.memory.embeddings import Embedder
from caredio.memory.query_cache import QueryCache

log = logging.getLogger(__name__)

KNOWLEDGE = "knowledge"
CLAIMS = "knowledge_claims"
SAMPLES = "samples"
CLAIM_SEPARATOR = " — "
WARM_LIMIT = 2048  # items kept in the embedder cache when added in one call


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

    def __post_init__(self) -> None:
        if not self.id:
            self.id = stable_id(self.culture, self.topic, self.text)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"culture": self.culture, "topic": self.topic,
                                "weight": float(self.weight), "source": self.source}
        if self.question_id:
            meta["question_id"] = self.question_id
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


def shown_half(candidates: list[KnowledgeItem], key: str, k: int) -> list[KnowledgeItem]:
    """About half of ``candidates`` (at most ``k``), chosen by a hash of ``key`` and item id."""
    shown = [item for item in candidates
             if hashlib.sha1(f"{key}\x1f{item.id}".encode()).digest()[0] % 2 == 0]
    return shown[:k]


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


def make_client(path: str | Path | None = None, url: str | None = None) -> Any:
    """Chroma client: a server when a URL is given, a directory when a path is, else in-memory."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    quiet = ChromaSettings(anonymized_telemetry=False)
    if url:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise UserInputError(f"memory.url: not an http(s) URL: {public_url(url)!r}")
        port = parsed.port or (443 if parsed.scheme == "https" else 8000)
        settings = _server_settings(url, quiet)  # a URL that cannot work is refused unasked
        _check_server(f"{parsed.scheme}://{parsed.hostname}:{port}", url)
        try:
            return chromadb.HttpClient(host=parsed.hostname, port=port,
                                       ssl=parsed.scheme == "https", settings=settings)
        except ValueError as exc:  # chromadb's way of saying the heartbeat found no server
            if "Could not connect" not in str(exc):
                raise
            raise ServiceUnreachable(f"cannot reach the Chroma server {public_url(url)}; is it "
                                     "running? (--memory-url)") from None
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=quiet)
    # Chroma keeps one in-process system for every EphemeralClient, so two ephemeral memories
    # would share their collections; each gets a database of its own instead.
    shared = chromadb.EphemeralClient(settings=quiet)
    database = f"ephemeral-{uuid.uuid4().hex}"
    chromadb.AdminClient(shared.get_settings()).create_database(database)
    return chromadb.EphemeralClient(settings=quiet, database=database)


def _check_server(base: str, url: str, timeout: float = 10.0) -> None:
    """Any HTTP answer from the server within ``timeout``: a refused, dropped or silent
    connection stops the command at start-up (exit 2) instead of hanging it."""
    import httpx

    parsed = urlparse(url)
    auth = ((unquote(parsed.username), unquote(parsed.password or ""))
            if parsed.username else None)
    try:
        httpx.get(f"{base}/api/v2/heartbeat", timeout=timeout, auth=auth)
    except httpx.TransportError as exc:
        raise ServiceUnreachable(f"cannot reach the Chroma server {public_url(url)} "
                                 f"({type(exc).__name__}); is it running? (--memory-url)") from None


def _server_settings(url: str, settings: Any) -> Any:
    """Credentials in a Chroma server URL (``http://user:password@host``) become Chroma's own
    basic authentication; nothing else in a URL can carry them (a query string is refused)."""
    parsed = urlparse(url)
    if parsed.query or parsed.params:
        raise UserInputError(f"memory.url: a query string is not supported ({public_url(url)}); "
                             "give credentials as http://user:password@host:port")
    if parsed.username is None and parsed.password is None:
        return settings
    if not parsed.username or not parsed.password:
        raise UserInputError(f"memory.url: give both a user and a password for Chroma's basic "
                             f"authentication ({public_url(url)})")
    settings.chroma_client_auth_provider = "chromadb.auth.basic_authn.BasicAuthClientProvider"
    settings.chroma_client_auth_credentials = f"{unquote(parsed.username)}:{unquote(parsed.password)}"
    return settings


class ServerCalls:
    """A Chroma server's client or collection whose calls name the server when it stops
    answering (ServiceLost) instead of raising httpx's bare "ConnectError: Connection refused".

    Every Chroma call of a memory goes through its client or its three collections, so this is
    the one place that knows which service a lost connection belonged to.
    """

    def __init__(self, target: Any, label: str) -> None:
        import httpx  # what Chroma's HTTP client raises when no answer comes

        self._target = target
        self._label = label
        self._lost = httpx.TransportError

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return value(*args, **kwargs)
            except self._lost as exc:  # refused, dropped, timed out: no answer at all
                raise ServiceLost(f"the Chroma server at {self._label} (--memory-url) stopped "
                                  f"answering ({type(exc).__name__}: {exc})") from exc

        return call


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
        self.samples = self._collection(SAMPLES)

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
        shown (cross-fitting, DESIGN.md 2.2): otherwise J would measure how much of the prompt
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
            "samples": int(self.samples.count()),
            "cultures": per_culture,
        }

    # -- accepted samples --------------------------------------------------------------------

    def add_samples(self, records: list[dict[str, Any]]) -> None:
        """Accepted samples, so later runs and selection can avoid near-duplicates.

        Stored as ``run_id/sample_id``: sample ids repeat from run to run (culture-topic-index),
        and every run's accepted samples must stay. Accepting a run again replaces its own.
        """
        if not records:
            return
        texts = [sample_text(r["question"], r["response"]) for r in records]
        vectors = self.embedder.embed(texts)
        self.samples.upsert(
            ids=[accepted_id(r["run_id"], r["sample_id"]) for r in records],
            documents=texts,
            embeddings=vectors.tolist(),
            metadatas=[{k: r[k] for k in ("sample_id", "culture", "topic", "run_id", "question",
                                           "objective", "representativeness", "distinctiveness")}
                       for r in records],
        )

    def accepted_questions(self, culture: str, topic: str, limit: int) -> list[str]:
        """Questions of samples accepted for this culture and topic (by any run)."""
        found = self.samples.get(where={"$and": [{"culture": culture}, {"topic": topic}]},
                                 include=["metadatas"], limit=limit)
        return [str(meta["question"]) for meta in found["metadatas"] if meta.get("question")]

    def sample_embeddings(self, exclude_run: str | None = None) -> tuple[list[str], np.ndarray]:
        where = {"run_id": {"$ne": exclude_run}} if exclude_run else None
        found = self.samples.get(where=where, include=["embeddings"])
        vectors = np.asarray(found["embeddings"], dtype=np.float32).reshape(-1, self.embedder.dim)
        return list(found["ids"]), vectors

