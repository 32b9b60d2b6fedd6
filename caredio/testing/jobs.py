"""Small jobs against the FAKE stub server, shared by the tests and the benchmark.

The settings run the real graph (agents, scorer, checkpointer, records) with an ephemeral
memory and explicit contrast cultures; the stub answers every LLM call.
"""

from __future__ import annotations

from typing import Any

from caredio.config import Settings, load_settings


def stub_settings(base_url: str, out: str, *, run_id: str = "run", rounds: int = 1,
                  cultures: tuple[str, ...] = ("Japan", "China"),
                  topics: tuple[str, ...] = ("food_drink",), samples_per_topic: int = 1,
                  concurrency: int = 4, llm: dict[str, Any] | None = None,
                  **extra: Any) -> Settings:
    """A job of len(cultures) x len(topics) x samples_per_topic samples, exactly ``rounds``
    refinement rounds each (the score thresholds cannot be met, so it never stops early)."""
    return load_settings(
        cultures=list(cultures), topics=list(topics), samples_per_topic=samples_per_topic,
        contrast=["Japan", "China", "South Korea"], out=out, run_id=run_id,
        concurrency=concurrency,
        loop={"max_rounds": rounds, "min_rounds": rounds, "r_threshold": 1.0,
              "d_threshold": 1.0, "patience": rounds + 1},
        llm={"base_url": base_url, "model": "stub", "timeout": 10.0, "backoff": 0.02,
             **(llm or {})},
        memory={"path": ":memory:", "elicit_missing": False},
        **extra,
    )
