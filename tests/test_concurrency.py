"""Bounded concurrency across the whole run, against the FAKE stub server.

What is asserted is order and counts seen by the server, never durations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from caredio.records import read_jsonl
from caredio.runner import start_run
from tests.support.jobs import stub_settings
from tests.support.stub_server import FaultPlan, StubOpenAIServer


def test_concurrency_bounds_requests_in_flight_across_samples(tmp_path: Path,
                                                              fake_embedder: Any) -> None:
    with StubOpenAIServer(latency=0.03) as stub:
        settings = stub_settings(stub.url, str(tmp_path), concurrency=2, samples_per_topic=2)
        _, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    assert record["status"] == "completed" and record["completed"] == 4
    assert stub.max_in_flight == 2  # never more, and the bound was reached


def test_a_slow_call_does_not_hold_up_the_other_samples(tmp_path: Path, fake_embedder: Any) -> None:
    faults = FaultPlan(script=("slow",), slow_seconds=1.5)  # slow, but inside the timeout
    with StubOpenAIServer(latency=0.01, faults=faults) as stub:
        settings = stub_settings(stub.url, str(tmp_path), concurrency=3, samples_per_topic=2)
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    assert record["status"] == "completed" and record["completed"] == 4
    slow = next(n for kind, n, outcome in stub.events if outcome == "slow")
    start = stub.events.index(("start", slow, "slow"))
    end = stub.events.index(("end", slow, "slow"))
    finished_meanwhile = [e for e in stub.events[start:end] if e[0] == "end"]
    assert len(finished_meanwhile) >= 5  # the others kept going
    assert len(read_jsonl(run_dir / "dataset.jsonl")) == 4
