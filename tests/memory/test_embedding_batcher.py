"""The embedder's micro-batcher: concurrent callers share model runs and each gets its own vectors.

The model here is a FAKE encode function (a vector derived from each text's characters) that
records every call: the test is about the batching logic, not about embeddings. The real
MiniLM goes through the same code in every scorer test.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from caredio.memory.embeddings import MicroBatcher


def fake_vector(text: str) -> np.ndarray:
    return np.array([len(text), sum(map(ord, text)), ord(text[0])], dtype=np.float32)


class GatedModel:
    """Blocks its first run until released, so other callers pile up meanwhile."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self.fail_with: BaseException | None = None

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            self.started.set()
            assert self.release.wait(10)
        if self.fail_with is not None:
            raise self.fail_with
        return np.stack([fake_vector(t) for t in texts])


def _wait_queued(batcher: MicroBatcher, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(batcher._queue) < n:
        assert time.monotonic() < deadline, "callers never queued"
        time.sleep(0.01)


def test_callers_arriving_during_a_run_share_the_next_one() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model.encode)
    asks = [["first"]] + [[f"text {i} a", f"text {i} b", "shared"] for i in range(5)]
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(batcher.run, asks[0])
        assert model.started.wait(10)
        rest = [pool.submit(batcher.run, ask) for ask in asks[1:]]
        _wait_queued(batcher, 5)
        model.release.set()
        results = [first.result(10), *(f.result(10) for f in rest)]
    # One run for the first caller, one for the five that queued behind it (not five more).
    assert len(model.calls) == 2 == batcher.runs
    assert sorted(model.calls[1]) == sorted({t for ask in asks[1:] for t in ask})
    for ask, got in zip(asks, results, strict=True):
        assert list(got) == ask
        for text in ask:
            np.testing.assert_array_equal(got[text], fake_vector(text))


def test_a_failed_run_raises_in_every_caller_it_served_and_the_next_run_works() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model.encode)
    model.fail_with = RuntimeError("model broke")
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(batcher.run, ["a"])
        assert model.started.wait(10)
        queued = [pool.submit(batcher.run, [t]) for t in ("b", "c")]
        _wait_queued(batcher, 2)
        model.release.set()
        for future in (first, *queued):
            with pytest.raises(RuntimeError, match="model broke"):
                future.result(10)
    model.fail_with = None
    assert list(batcher.run(["d"])) == ["d"]


def test_max_texts_caps_a_merged_run() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model.encode, max_texts=4)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.run, ["x"])
        assert model.started.wait(10)
        rest = [pool.submit(batcher.run, [f"{i}-1", f"{i}-2", f"{i}-3"]) for i in range(3)]
        _wait_queued(batcher, 3)
        model.release.set()
        for future in (first, *rest):
            future.result(10)
    assert [len(call) for call in model.calls] == [1, 3, 3, 3]


def test_the_real_embedder_returns_the_same_vectors_batched_or_alone(embedder: object) -> None:
    """MiniLM through the batcher: a text embedded together with others gets the vector it
    gets alone (padding in a shared run must not change it)."""
    texts = ["Shoes come off at the entrance of a home.", "Rice is eaten with most meals.",
             "A small gift is customary when visiting."]
    alone = np.stack([embedder._encode([t])[0] for t in texts])  # type: ignore[attr-defined]
    together = embedder._encode(texts)  # type: ignore[attr-defined]
    np.testing.assert_allclose(alone, together, atol=1e-5)
