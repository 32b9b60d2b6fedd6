"""Thread counts are settings, applied once per process: numpy's BLAS pool (process-wide in
OpenBLAS), torch's threads for the embedding model, and ``n_threads`` of the embedded
llama.cpp server."""

from __future__ import annotations

from typing import Any

import pytest

from caredio.config.loading import load_settings
from caredio.config.settings import ThreadSettings
from caredio.errors import UserInputError
from caredio.llm.embedded import LocalLLMServer
from caredio.threads import configure_threads, default_threads, llm_threads


def blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_settings_set_the_process_thread_counts(embedder: Any) -> None:
    import torch

    try:
        applied = configure_threads(ThreadSettings(llm=3, embeddings=2))
        assert applied == {"blas": 1, "embeddings": 2, "llm": 3}
        assert torch.get_num_threads() == 2
        assert blas_threads() and set(blas_threads()) == {1}
        command = " ".join(LocalLLMServer(threads=llm_threads(ThreadSettings(llm=3))).command())
        assert "--n_threads 3" in command
    finally:
        configure_threads(ThreadSettings())
    assert torch.get_num_threads() == default_threads()
    assert set(blas_threads()) == {1}  # the BLAS limit stays: it is never entered and left


def test_the_default_is_half_the_cpus_and_bad_counts_are_named() -> None:
    assert llm_threads(ThreadSettings()) == default_threads() >= 1
    with pytest.raises(UserInputError, match=r"threads\.llm"):
        load_settings(threads={"llm": 0})
