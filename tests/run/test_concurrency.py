"""Bounded concurrency across the whole run, against the FAKE stub server.

What is asserted is order and counts seen by the server, never durations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from caredio.run.runner import start_run
from caredio.rundir.files import read_jsonl
from testing.jobs import stub_settings
from testing.stub_server import FaultPlan, StubOpenAIServer


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


def _most_samples_at_once(events: list[tuple[str, str]]) -> int:
    running: set[str] = set()
    most = 0
    for kind, sample_id in events:
        if kind == "sample_started":
            running.add(sample_id)
        elif kind in ("sample_done", "sample_failed"):
            running.discard(sample_id)
        most = max(most, len(running))
    return most


def test_samples_in_flight_bounds_the_samples_optimized_at_once(tmp_path: Path,
                                                                fake_embedder: Any) -> None:
    """Counted from the run's own events: a sample is in flight from its start to its end."""
    seen: dict[int | None, int] = {}
    for bound in (3, None):  # None: the default, 4 per request slot (2 slots here)
        events: list[tuple[str, str]] = []

        def note(kind: str, data: dict[str, Any], events: list[tuple[str, str]] = events) -> None:
            events.append((kind, data.get("sample_id", "")))

        with StubOpenAIServer(latency=0.02) as stub:
            settings = stub_settings(stub.url, str(tmp_path / str(bound)), concurrency=2,
                                     samples_per_topic=5, samples_in_flight=bound)
            _, record = start_run(settings, note, embedder=fake_embedder)
        assert record["status"] == "completed" and record["completed"] == 10
        assert (record["requests_at_once"], record["samples_in_flight"]) == (2, bound or 8)
        seen[bound] = _most_samples_at_once(events)
    # the bound was reached and never passed; the default is 4 per slot (it was 2: 4 here)
    assert seen == {3: 3, None: 8}
