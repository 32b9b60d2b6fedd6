"""A slow endpoint that is alive is waited for; one that stopped answering is given up.

The FAKE stub server, made slower than the client's timeout, answers its health URL at once
(as the embedded llama.cpp server's HTTP loop does while the model generates). The FAKE hash
embedder; the graph, the client, its retries and the breaker are the real ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from caredio.errors import EndpointDown
from caredio.run.runner import start_run
from caredio.rundir.files import read_jsonl
from testing.jobs import stub_settings
from testing.stub_server import StubOpenAIServer

pytestmark = pytest.mark.slow

# A probe must be answered within TIMEOUT: at 0.5 s a busy shared machine once left a probe of
# the in-process stub unanswered that long and the run failed (CI, 29 Nov), so 1 s.
TIMEOUT = 1.0
REPLY_SECONDS = 3.0  # every reply takes three timeouts


def test_replies_slower_than_the_timeout_complete_while_health_answers(
        tmp_path: Path, fake_embedder: Any) -> None:
    with StubOpenAIServer(latency=REPLY_SECONDS) as stub:
        settings = stub_settings(stub.url, str(tmp_path), llm={
            "timeout": TIMEOUT, "health_url": stub.health_url, "max_retries": 0})
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    assert record["status"] == "completed" and record["completed"] == 2, record.get("failures")
    turns = read_jsonl(run_dir / "trace.jsonl")
    assert turns and all(t["retries"] == 0 and t["error"] is None for t in turns)
    assert min(t["latency_ms"] for t in turns) >= REPLY_SECONDS * 1000 > TIMEOUT * 1000
    assert stub.health_checks >= len(turns)  # each call was watched, not just waited out


def test_without_a_health_url_the_same_replies_time_out(tmp_path: Path,
                                                        fake_embedder: Any) -> None:
    """The premise of the test above: the stub really is slower than the timeout."""
    with StubOpenAIServer(latency=REPLY_SECONDS) as stub:
        settings = stub_settings(stub.url, str(tmp_path), llm={
            "timeout": TIMEOUT, "max_retries": 0})
        _, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    assert record["failed"] == 2 and record["status"] == "failed"
    assert all("APITimeoutError" in f["error"] for f in record["failures"])


def test_an_endpoint_whose_health_stops_answering_is_declared_down(
        tmp_path: Path, fake_embedder: Any) -> None:
    with StubOpenAIServer(latency=60) as stub:
        stub.healthy = False  # replies never come, and health says so
        settings = stub_settings(stub.url, str(tmp_path), llm={
            "timeout": TIMEOUT, "health_url": stub.health_url, "max_retries": 8,
            "down_after": 1.0})
        with pytest.raises(EndpointDown, match=r"is down.*NoSignOfLife"):
            start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    record = read_jsonl(tmp_path / "run" / "trace.jsonl")
    assert record and all(t["error"] for t in record)
