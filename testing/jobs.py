"""Small jobs against the FAKE stub server, shared by the tests and the benchmark.

The settings run the real graph (agents, scorer, checkpointer, records) with an ephemeral
memory and explicit contrast cultures; the stub answers every LLM call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from caredio.config.loading import load_settings
from caredio.config.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def stub_settings(base_url: str, out: str, *, run_id: str = "run", rounds: int = 1,
                  cultures: tuple[str, ...] = ("Japan", "China"),
                  topics: tuple[str, ...] = ("food_drink",), samples_per_topic: int = 1,
                  concurrency: int = 4, llm: dict[str, Any] | None = None,
                  loop: dict[str, Any] | None = None, **extra: Any) -> Settings:
    """A job of len(cultures) x len(topics) x samples_per_topic samples, exactly ``rounds``
    refinement rounds each (the score thresholds cannot be met, so it never stops early)."""
    return load_settings(
        cultures=list(cultures), topics=list(topics), samples_per_topic=samples_per_topic,
        contrast=["Japan", "China", "South Korea"], out=out, run_id=run_id,
        concurrency=concurrency,
        loop={"max_rounds": rounds, "min_rounds": rounds, "r_threshold": 1.0,
              "d_threshold": 1.0, "patience": rounds + 1, **(loop or {})},
        llm={"base_url": base_url, "model": "stub", "timeout": 10.0, "backoff": 0.02,
             **(llm or {})},
        memory={"path": ":memory:", "elicit_missing": False},
        **extra,
    )


class HashEmbedder:
    """A FAKE embedder for tests about orchestration: hashed bag of words, unit length.

    It loads in no time (the real MiniLM takes ~20 s per process on 2 cores), which keeps
    tests that start several `caredio` processes fast. It claims the default backend's
    name so a memory accepts it: use it only with memories the test throws away.
    """

    portable = True  # small and picklable: a Ray run ships it to its workers as it is

    def __init__(self, dim: int = 384) -> None:
        from caredio.memory.embeddings import DEFAULT_BACKEND

        self.backend = DEFAULT_BACKEND
        self.dim = dim

    def embed(self, texts: list[str]) -> Any:
        import hashlib

        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                out[row, int.from_bytes(digest[:4], "little") % self.dim] += 1.0
            out[row, row % self.dim] += 1e-3  # never all zero
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def interruptible() -> None:
    """``preexec_fn`` of a CLI subprocess a test stops with SIGINT: a shell starts background
    jobs with SIGINT ignored and children inherit that, so a suite launched with ``&`` saw its
    Ctrl-C tests hang or run to the end. The child starts with the default disposition."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(proc: subprocess.Popen[str], ready: Callable[[], bool], what: str, limit: float) -> None:
    """Poll until ready() while ``proc`` runs (no timing is asserted: the limit only turns a
    hang into a failure); fail with the process's output if it ends first."""
    deadline = time.monotonic() + limit
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended before {what}: {proc.returncode}\n{out}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def fake_cli_env(**extra: str) -> dict[str, str]:
    """Environment for a `python -c CLI_WITH_FAKE_EMBEDDER` subprocess: no API keys, offline,
    and the repository root on the path (the test doubles are not installed with caredio)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "CAREDIO_API_KEY") and not k.startswith("CAREDIO_")}
    path = [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env.update(HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False", COLUMNS="200",
               PYTHONPATH=os.pathsep.join(path), **extra)
    return env


# `python -c CLI_WITH_FAKE_EMBEDDER args...` runs the real CLI with HashEmbedder installed as
# the shared embedder of the default backend (``memory.embedding = "minilm"``). Loading the
# real model there is an error: the key once drifted and every such process spent ~30 s
# loading MiniLM and embedding the starter pack with it, unnoticed.
CLI_WITH_FAKE_EMBEDDER = """
import caredio.memory.embeddings as e
from testing.jobs import HashEmbedder
e._shared[e.shared_key("minilm")] = HashEmbedder()
def _refuse(*args, **kwargs):
    raise AssertionError("CLI_WITH_FAKE_EMBEDDER: the real embedding model was loaded")
e.SentenceTransformerEmbedder.__init__ = _refuse
from caredio.cli.main import app
app()
"""


def trace_totals(run_dir: Path) -> dict[str, Any]:
    """Tokens, calls and retries per role summed from trace.jsonl, shaped like run.json's."""
    from caredio.config.settings import ROLES
    from caredio.rundir.files import read_jsonl

    tokens = {role: {"input": 0, "output": 0, "calls": 0} for role in ROLES}
    retries = 0
    for turn in read_jsonl(run_dir / "trace.jsonl"):
        usage = tokens[turn["agent"]]
        usage["input"] += turn["input_tokens"]
        usage["output"] += turn["output_tokens"]
        usage["calls"] += 1
        retries += turn["retries"]
    return {"tokens": tokens, "retries": retries}
