"""MiniLM on ONNX Runtime gives torch's vectors: a memory embedded by one runtime serves the other.

Both runtimes are the real packaged model; nothing here is faked.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from caredio.config.settings import MemorySettings
from caredio.errors import UserInputError
from caredio.memory.embeddings import DEFAULT_BACKEND, SentenceTransformerEmbedder
from caredio.memory.onnx_encoder import resolve_runtime

STARTER = Path(__file__).resolve().parents[2] / "memory" / "data" / "starter_knowledge.jsonl"


@pytest.fixture(scope="module")
def runtimes() -> tuple[SentenceTransformerEmbedder, SentenceTransformerEmbedder]:
    return SentenceTransformerEmbedder(runtime="onnx"), SentenceTransformerEmbedder(runtime="torch")


def mixed_texts() -> list[str]:
    """What a scoring micro-batch holds: bare words beside long sentences, other scripts, and one
    text longer than the model's 256 tokens (truncated the same way by both)."""
    items = [json.loads(line)["text"] for line in STARTER.read_text(encoding="utf-8").splitlines()[:40]]
    words = ["rice", "injera", "Kimchi, bulgogi.", "물, 커피, 우유", "お辞儀をする", "a"]
    long = " ".join(items)  # ~600 words
    mixed = [t for pair in zip(items, words * 7, strict=False) for t in pair]
    return [*mixed, long]


def test_onnx_runtime_gives_the_vectors_torch_gives(runtimes) -> None:
    onnx, torch = runtimes
    assert (onnx.runtime, torch.runtime) == ("onnx", "torch")
    texts = mixed_texts()
    # Fresh texts in one call: several padded batches, sorted by length and put back in order.
    a = onnx._encode(texts)
    b = torch._encode(texts)
    assert a.shape == b.shape == (len(texts), 384)
    assert np.abs(a - b).max() < 1e-5
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # Distinct texts give distinct vectors: a pooling or ordering bug that returned one row for
    # all, or rows of the wrong texts, fails here or above.
    assert np.abs(a[0] - a[1]).max() > 0.05


def test_a_text_alone_and_in_a_padded_batch_get_the_same_vector(runtimes) -> None:
    onnx, _ = runtimes
    texts = mixed_texts()
    batched = onnx._encode(texts)
    for i in (1, 3, len(texts) - 1):  # a bare word, a word in another script, the truncated text
        assert np.abs(onnx._encode([texts[i]])[0] - batched[i]).max() < 1e-5


def test_both_runtimes_are_one_backend(runtimes) -> None:
    # The memory refuses vectors from another backend; the runtime does not change what they are.
    onnx, torch = runtimes
    assert onnx.backend == torch.backend == DEFAULT_BACKEND
    assert resolve_runtime("auto") == "onnx"  # the local extra installs onnx
    assert resolve_runtime("torch") == "torch"
    with pytest.raises(UserInputError, match="embedding_runtime"):
        resolve_runtime("tensorflow")
    with pytest.raises(ValidationError, match="embedding_runtime"):
        MemorySettings(embedding_runtime="tensorflow")  # type: ignore[arg-type]


def test_auto_falls_back_to_torch_when_the_export_fails_and_onnx_does_not(monkeypatch, caplog) -> None:
    # A FAKE failure of the exporter (as a future torch without the TorchScript exporter would
    # raise): "auto" costs speed, not the run, and says so; an explicit "onnx" is refused.
    from caredio.memory import onnx_encoder

    def broken(*args, **kwargs):
        raise RuntimeError("exporter unavailable")

    monkeypatch.setattr(onnx_encoder.OnnxEncoder, "__init__", broken)
    with caplog.at_level("WARNING", logger="caredio.memory.embeddings"):
        embedder = SentenceTransformerEmbedder(runtime="auto")
    assert embedder.runtime == "torch"
    assert "exporter unavailable" in caplog.text
    assert embedder.embed(["rice"]).shape == (1, 384)
    with pytest.raises(RuntimeError, match="exporter unavailable"):
        SentenceTransformerEmbedder(runtime="onnx")


def test_only_a_mean_pooled_pipeline_is_exported() -> None:
    # FAKE pipelines (stand-ins named like sentence-transformers' modules): a CLS-pooled model
    # run through the mean pooling here would give silently different vectors.
    from caredio.memory.onnx_encoder import _check_pipeline

    def pipeline(pooling: dict) -> list:
        class Transformer: ...
        class Pooling:
            def get_config_dict(self) -> dict:
                return pooling
        class Normalize: ...
        return [Transformer(), Pooling(), Normalize()]

    _check_pipeline(pipeline({"pooling_mode": "mean"}))
    _check_pipeline(pipeline({"pooling_mode_mean_tokens": True}))  # sentence-transformers < 6
    for refused in ({"pooling_mode": "cls"}, {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}):
        with pytest.raises(UserInputError, match="not a mean-pooled transformer"):
            _check_pipeline(pipeline(refused))
    with pytest.raises(UserInputError, match="not a mean-pooled transformer"):
        _check_pipeline(pipeline({"pooling_mode": "mean"})[:2])  # no Normalize: vectors not unit length
