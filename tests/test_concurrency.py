"""Bounded concurrency across the whole run, against the FAKE stub server.

What is asserted is order and counts seen by the server, never durations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from caredio.records import read_jsonl
from caredio.runner import start_run
from caredio.testing.jobs import HashEmbedder, stub_settings
from caredio.testing.stub_server import FaultPlan, StubOpenAIServer


@pytest.fixture
def embedder() -> HashEmbedder:
    """The FAKE HashEmbedder: these tests are about orchestration, and the real MiniLM would
    re-embed the 402-item starter pack into every new ephemeral memory (~12 s each here)."""
    return HashEmbedder()



def test_concurrency_bounds_requests_in_flight_across_samples(tmp_path: Path,
                                                              embedder: Any) -> None:
    with StubOpenAIServer(latency=0.03) as stub:
        settings = stub_settings(stub.url, str(tmp_path), concurrency=2, samples_per_topic=2)
        _, record = start_run(settings, lambda kind, data: None, embedder=embedder)
    assert record["status"] == "completed" and record["completed"] == 4
    assert stub.max_in_flight == 2  # never more, and the bound was reached


def test_a_slow_call_does_not_hold_up_the_other_samples(tmp_path: Path, embedder: Any) -> None:
    faults = FaultPlan(script=("slow",), slow_seconds=1.5)  # slow, but inside the timeout
    with StubOpenAIServer(latency=0.01, faults=faults) as stub:
        settings = stub_settings(stub.url, str(tmp_path), concurrency=3, samples_per_topic=2)
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=embedder)
    assert record["status"] == "completed" and record["completed"] == 4
    slow = next(n for kind, n, outcome in stub.events if outcome == "slow")
    start = stub.events.index(("start", slow, "slow"))
    end = stub.events.index(("end", slow, "slow"))
    finished_meanwhile = [e for e in stub.events[start:end] if e[0] == "end"]
    assert len(finished_meanwhile) >= 5  # the others kept going
    assert len(read_jsonl(run_dir / "dataset.jsonl")) == 4
