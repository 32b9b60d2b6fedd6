"""Thread counts, set once per process at start-up — never around individual calls.

Three pools share the CPU of a run: the embedded llama.cpp server (its own process,
``n_threads``), the embedding model (torch's intra-op threads) and numpy's BLAS (the
scorer's matrix products). On a busy 2-core machine one thread each was several times
faster than two (benchmarks/threads.py; README "Threads"), and OpenBLAS's pool is
process-wide: limiting it per call from concurrent scoring threads raced (two overlapping
calls left the process at 1 thread while one of them ran with 2). So the counts are settings
(``[threads]``), applied once by the entry points (:func:`configure_threads` in
``start_run``, ``resume_run`` and the memory/score commands) and when the embedding model
loads; code that computes (the scorer) relies on them and sets nothing itself.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from caredio.config.settings import ThreadSettings

log = logging.getLogger(__name__)

BLAS_THREADS = 1  # the scorer's products are small: a second thread only adds hand-offs

_lock = threading.Lock()
_applied: dict[str, int] = {}
_blas_limit: Any = None  # threadpoolctl's limiter, kept so the limit stays in force


def available_cpus() -> int:
    """CPUs this process may run on (a container's share, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Half the CPUs, at least one: the server, the embedder and the event loop share them."""
    return max(1, available_cpus() // 2)


def llm_threads(settings: ThreadSettings | None = None) -> int:
    """``n_threads`` for the embedded llama.cpp server."""
    return (settings.llm if settings and settings.llm else None) or default_threads()


def embedding_threads(settings: ThreadSettings | None = None) -> int:
    return (settings.embeddings if settings and settings.embeddings else None) or default_threads()


def configure_threads(settings: ThreadSettings | None = None) -> dict[str, int]:
    """Apply the thread counts to this process (idempotent); returns what is in force."""
    wanted = {"blas": BLAS_THREADS, "embeddings": embedding_threads(settings),
              "llm": llm_threads(settings)}
    with _lock:
        _limit_blas()  # again each time: a BLAS library loaded since then is not limited yet
        if _applied == wanted:
            return dict(_applied)
        _applied.clear()
        _applied.update(wanted)
        if "torch" in sys.modules:  # loaded already; otherwise the embedder applies it
            _set_torch_threads(wanted["embeddings"])
        log.info("threads: embedded server %d, embedding model %d, BLAS %d",
                 wanted["llm"], wanted["embeddings"], BLAS_THREADS)
        return dict(_applied)


def apply_to_torch() -> None:
    """Called by the embedding model right after it imports torch (and the BLAS libraries
    that sentence-transformers brings along)."""
    if not _applied:
        configure_threads()
    with _lock:
        _limit_blas()
        _set_torch_threads(_applied["embeddings"])


def _limit_blas() -> None:
    """Every BLAS pool loaded in this process to BLAS_THREADS (a no-op when already so)."""
    global _blas_limit
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional speed-up: numpy works without the limit
        log.info("threadpoolctl is not installed; numpy keeps its BLAS threads")
        return
    _blas_limit = threadpool_limits(limits=BLAS_THREADS, user_api="blas")


def _set_torch_threads(count: int) -> None:
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
