"""Fault injection: the real graph against the FAKE stub server with injected failures.

No timing is asserted; pytest-timeout is what catches a hang.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from caredio.errors import EndpointDown, EndpointError
from caredio.run.runner import resume_run, start_run
from caredio.rundir.files import read_jsonl
from testing.jobs import stub_settings
from testing.stub_server import FaultPlan, StubOpenAIServer, dead_url

TWENTY_PERCENT = FaultPlan(
    rate_429=0.04, retry_after=0.05, rate_500=0.04, rate_slow=0.02, slow_seconds=3.0,
    rate_drop=0.03, rate_truncated=0.03, rate_invalid_json=0.02, rate_empty=0.02,
    reject_json_schema=True, seed=7,
)

def _events() -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    seen: list[tuple[str, dict[str, Any]]] = []
    return seen, lambda kind, data: seen.append((kind, data))


def test_twenty_percent_faulty_calls_still_give_every_sample(tmp_path: Path, fake_embedder: Any) -> None:
    with StubOpenAIServer(latency=0.005, faults=TWENTY_PERCENT) as stub:
        settings = stub_settings(stub.url, str(tmp_path), rounds=2, concurrency=4,
                                 cultures=("Japan", "China", "South Korea"), samples_per_topic=2,
                                 llm={"timeout": 1.0, "max_retries": 6})
        _, on_event = _events()
        run_dir, record = start_run(settings, on_event, embedder=fake_embedder)
    faults = {k: v for k, v in stub.stats.items() if k not in ("ok", "json_schema_rejected")}
    assert sum(faults.values()) >= 10, faults  # faults really happened
    assert record["status"] == "completed" and record["failed"] == 0 and record["failures"] == []
    dataset = read_jsonl(run_dir / "dataset.jsonl")
    ids = [line["metadata"]["sample_id"] for line in dataset]
    planned = [spec["sample_id"] for spec in read_jsonl(run_dir / "plan.jsonl")]
    assert sorted(ids) == sorted(planned) and len(ids) == 6
    assert all(line["messages"][-1]["content"].strip() for line in dataset)  # never empty
    trace = read_jsonl(run_dir / "trace.jsonl")
    retried = [t for t in trace if t["retries"]]
    assert retried and all(t["retry_reasons"] for t in retried)
    reasons = " ".join(r for t in retried for r in t["retry_reasons"])
    expected = {"429": "RateLimitError", "500": "InternalServerError", "slow": "APITimeoutError",
                "drop": "APIConnectionError"}
    for outcome, reason in expected.items():
        if stub.stats[outcome]:  # each fault the server injected shows up as a retry reason
            assert reason in reasons, (outcome, reason)
    assert record["retries"] == sum(t["retries"] for t in trace)


def test_endpoint_down_from_the_start_fails_fast_and_writes_nothing(tmp_path: Path,
                                                                     fake_embedder: Any) -> None:
    settings = stub_settings(dead_url(), str(tmp_path / "runs"))
    with pytest.raises(EndpointError, match="cannot reach the LLM endpoint"):
        start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    assert not (tmp_path / "runs").exists()


def test_endpoint_going_down_mid_run_stops_the_run_then_resume_finishes(
        tmp_path: Path, fake_embedder: Any) -> None:
    stub = StubOpenAIServer(latency=0.02).start()
    try:
        settings = stub_settings(stub.url, str(tmp_path), rounds=3, concurrency=2,
                                 cultures=("Japan", "China", "South Korea"),
                                 llm={"max_retries": 8, "down_after": 0.3})
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["record"] = start_run(settings, lambda kind, data: None,
                                              embedder=fake_embedder)
            except EndpointError as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=run)
        worker.start()
        while worker.is_alive() and len(stub.requests) < 12:
            worker.join(0.02)
        stub.set_down(True)
        worker.join(120)
        assert not worker.is_alive()
        assert isinstance(outcome.get("error"), EndpointDown), outcome
        message = str(outcome["error"])
        assert "is down" in message and "caredio resume" in message
        run_dir = tmp_path / "run"
        record = json.loads((run_dir / "run.json").read_text())
        assert record["status"] == "failed" and "EndpointDown" in record["error"]

        stub.set_down(False)
        record = resume_run(run_dir, lambda kind, data: None, embedder=fake_embedder)
        assert record["status"] == "completed" and record["completed"] == 3
        ids = [line["metadata"]["sample_id"] for line in read_jsonl(run_dir / "dataset.jsonl")]
        assert len(ids) == len(set(ids)) == 3
    finally:
        stub.stop()


def _germany_fails(body: dict[str, Any]) -> str | None:
    text = json.dumps(body.get("messages"))
    return "500" if "Germany" in text else None


def test_a_failing_sample_is_isolated_recorded_and_retried_on_resume(tmp_path: Path,
                                                                     fake_embedder: Any) -> None:
    with StubOpenAIServer(latency=0.005, faults=FaultPlan(rule=_germany_fails)) as stub:
        settings = stub_settings(stub.url, str(tmp_path), cultures=("Japan", "China", "Germany"),
                                 llm={"max_retries": 1}, max_failed_share=0.2)
        settings = settings.model_copy(update={"contrast": ["Japan", "China"]})
        events, on_event = _events()
        run_dir, record = start_run(settings, on_event, embedder=fake_embedder)
        assert record["status"] == "failed"  # 1 of 3 is past max_failed_share = 0.2
        assert record["completed"] == 2 and record["failed"] == 1
        [failure] = record["failures"]
        assert failure["sample_id"].startswith("germany") and "InternalServerError" in failure["error"]
        assert any(kind == "sample_failed" for kind, _ in events)
        errors = [t for t in read_jsonl(run_dir / "trace.jsonl")
                  if t["sample_id"] == failure["sample_id"] and t["error"]]
        assert errors and "InternalServerError" in errors[0]["error"]
        assert len(read_jsonl(run_dir / "dataset.jsonl")) == 2  # no empty stand-in

        stub.faults.rule = None  # the endpoint recovers
        before = Counter(t["sample_id"] for t in read_jsonl(run_dir / "trace.jsonl"))
        record = resume_run(run_dir, on_event, embedder=fake_embedder)
        assert record["status"] == "completed" and record["failures"] == []
        assert record["completed"] == 3 and record["failed"] == 0
        after = Counter(t["sample_id"] for t in read_jsonl(run_dir / "trace.jsonl"))
        grown = {sample for sample in after if after[sample] > before[sample]}
        assert grown == {failure["sample_id"]}  # finished samples were not redone
    ids = [line["metadata"]["sample_id"] for line in read_jsonl(run_dir / "dataset.jsonl")]
    assert len(ids) == len(set(ids)) == 3
