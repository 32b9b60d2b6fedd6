"""MiniLM run by ONNX Runtime instead of torch: the same network and the same vectors, less CPU.

The network is exported from the sentence-transformers model already loaded, into memory, when
the embedder starts (about a second; nothing is downloaded and nothing written to disk). Texts
are tokenized by sentence-transformers' own tokenizer and mean-pooled and normalized here, as
its ``Pooling`` and ``Normalize`` modules do. Vectors match ``SentenceTransformer.encode`` to
~2e-7 (tests/test_embeddings_onnx.py), so a memory embedded with either runtime serves both.

Why: the embedding model is most of the client's CPU per LLM call (docs/scale.md), and
onnxruntime, which chromadb already installs, cost 21-29% less embedding CPU per call than torch
on this 2-core machine (``benchmarks/orchestration.py --embed-runtimes torch,onnx``).
"""

from __future__ import annotations

import importlib.util
import io
import logging
import warnings
from typing import Any

import numpy as np

from caredio.errors import UserInputError

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx", "torch")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def resolve_runtime(runtime: str) -> str:
    """``onnx`` or ``torch``: ``auto`` is ONNX Runtime when its exporter's package is installed
    (the ``local`` extra brings it), torch otherwise."""
    if runtime not in RUNTIMES:
        raise UserInputError(f"memory.embedding_runtime: unknown runtime {runtime!r} (known: {', '.join(RUNTIMES)})")
    available = all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))
    if runtime == "onnx" and not available:
        raise UserInputError("memory.embedding_runtime = 'onnx' needs the onnx and onnxruntime packages; "
                             "install the 'local' extra: pip install 'caredio[local]'")
    if runtime == "auto":
        return "onnx" if available else "torch"
    return runtime


def _check_pipeline(model: Any) -> None:
    """Only the mean-pooled, normalized BERT that MiniLM is: another pipeline would need its own
    pooling here, and silently different vectors would corrupt a memory."""
    names = [type(module).__name__ for module in model]
    pooling = model[1].get_config_dict() if len(names) > 1 else {}
    # sentence-transformers 6 names the mode; older versions set one flag per mode.
    mean = pooling.get("pooling_mode", "mean" if pooling.get("pooling_mode_mean_tokens") else None) == "mean"
    if names != ["Transformer", "Pooling", "Normalize"] or not mean:
        raise UserInputError(f"memory.embedding_runtime = 'onnx': the model's pipeline {names} "
                             f"({pooling}) is not a mean-pooled transformer; use the 'torch' runtime")


def _last_hidden_state(network: Any, inputs: list[str]) -> Any:
    """The transformer as a module of positional tensors, which is what the exporter traces."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.network(**dict(zip(inputs, tensors, strict=True))).last_hidden_state

    return LastHiddenState()


class OnnxEncoder:
    """``encode(texts, batch_size)`` of a loaded ``SentenceTransformer`` on ONNX Runtime."""

    def __init__(self, model: Any, threads: int) -> None:
        import onnxruntime
        import torch

        _check_pipeline(model)
        # ``tokenize`` before sentence-transformers 6, ``preprocess`` (and ``tokenize`` deprecated) since.
        self._tokenize = getattr(model, "preprocess", None) or model.tokenize
        network = model[0].auto_model.eval()
        sample = self._tokenize(["hello world"])
        self._inputs = [name for name in _INPUTS if name in sample]
        buffer = io.BytesIO()
        # The tracer warns about every shape-dependent branch in the BERT code; the axes that
        # vary are declared dynamic below, and the test compares the vectors with torch's.
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # The TorchScript exporter (dynamo=False) writes to a file object too; its typing says paths.
            torch.onnx.export(
                _last_hidden_state(network, self._inputs), tuple(sample[name] for name in self._inputs),
                buffer,  # type: ignore[arg-type]
                input_names=self._inputs, output_names=["last_hidden_state"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*self._inputs, "last_hidden_state"]},
                opset_version=17, dynamo=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle pool threads spin by default: CPU burnt for nothing on a shared machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(buffer.getvalue(), options,
                                                     providers=["CPUExecutionProvider"])
        self.dim = int(model[0].auto_model.config.hidden_size)
        log.info("embedding model on ONNX Runtime (%d thread%s)", threads, "" if threads == 1 else "s")

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        # Longest first, as sentence-transformers does: each batch pads to similar lengths.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            features = self._tokenize([texts[i] for i in rows])
            feeds = {name: features[name].numpy().astype(np.int64) for name in self._inputs}
            hidden = self._session.run(None, feeds)[0]
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            vectors[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return vectors
