"""The run's callbacks reach every sample graph and agent call; agent turns export as spans.

Real runs of the real graph (agents, scorer, SQLite checkpoints, records) against the FAKE
stub server, with the FAKE hash embedder: the test is about where callbacks and spans go.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from caredio.run.runner import start_run
from caredio.rundir.files import read_jsonl
from testing.jobs import stub_settings
from testing.stub_server import FaultPlan, StubOpenAIServer


class RunTree(BaseCallbackHandler):
    """Every chain and chat-model run LangChain reports, with its parent."""

    def __init__(self) -> None:
        self.chains: dict[UUID, tuple[str, UUID | None, dict[str, Any]]] = {}
        self.chat_calls: list[tuple[UUID | None, str]] = []

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID,
                       parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self.chains[run_id] = (kwargs.get("name") or "", parent_run_id, kwargs.get("metadata") or {})

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID,
                            parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self.chat_calls.append((parent_run_id, messages[0][-1].content))

    def ancestors(self, run_id: UUID | None) -> list[str]:
        names = []
        while run_id is not None and run_id in self.chains:
            name, run_id, _ = self.chains[run_id]
            names.append(name)
        return names


def test_run_callbacks_reach_every_sample_graph_and_agent_call(tmp_path: Path,
                                                                fake_embedder: Any) -> None:
    tree = RunTree()
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path), rounds=1, concurrency=4)
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder,
                                    callbacks=[tree])
    assert record["status"] == "completed"
    trace = read_jsonl(run_dir / "trace.jsonl")
    # Every agent turn was seen as a chat-model call, under its sample's graph, under the run.
    assert len(tree.chat_calls) == len(trace) > 0
    samples_seen = set()
    for parent, _prompt in tree.chat_calls:
        path = tree.ancestors(parent)
        sample_graph = next(n for n in path if n.startswith("optimize_sample:"))
        samples_seen.add(sample_graph.removeprefix("optimize_sample:"))
        assert path[-1] == "caredio_run:run"
    assert samples_seen == {"japan-food_drink-000", "china-food_drink-000"}
    metadata = [meta for name, _, meta in tree.chains.values() if name.startswith("optimize_sample:")]
    assert {m["caredio_sample_id"] for m in metadata} == samples_seen
    # Each sample kept its own checkpoint thread at the top level (not a child namespace of
    # the run graph): what `caredio resume` reads.
    with sqlite3.connect(run_dir / "checkpoints.sqlite") as db:
        threads = {(t, ns) for t, ns in db.execute(
            "select distinct thread_id, checkpoint_ns from checkpoints")}
    assert threads == {("japan-food_drink-000", ""), ("china-food_drink-000", "")}


def test_agent_turns_export_as_spans_under_the_run(tmp_path: Path, fake_embedder: Any) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # One 500 at the start: a retried turn must show its retry on the span.
    with StubOpenAIServer(latency=0.02, faults=FaultPlan(script=("500",))) as stub:
        settings = stub_settings(stub.url, str(tmp_path), rounds=1, concurrency=4)
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder,
                                    tracer_provider=provider)
    assert record["status"] == "completed"
    spans = exporter.get_finished_spans()
    (run_span,) = [s for s in spans if s.name == "caredio.run"]
    assert run_span.attributes["caredio.status"] == "completed"
    turns = [s for s in spans if s.name != "caredio.run"]
    trace = read_jsonl(run_dir / "trace.jsonl")
    assert len(turns) == len(trace)
    assert all(s.parent is not None and s.parent.span_id == run_span.context.span_id for s in turns)

    def key(item: dict[str, Any]) -> tuple[Any, ...]:
        return (item["sample_id"], item["agent"], item["step"], item["round"],
                item["input_tokens"], item["output_tokens"], item["retries"])

    from_spans = sorted(key({
        "sample_id": s.attributes["caredio.sample_id"], "agent": s.attributes["caredio.agent"],
        "step": s.attributes["caredio.step"], "round": s.attributes["caredio.round"],
        "input_tokens": s.attributes["gen_ai.usage.input_tokens"],
        "output_tokens": s.attributes["gen_ai.usage.output_tokens"],
        "retries": s.attributes["caredio.retries"]}) for s in turns)
    assert from_spans == sorted(key(t) for t in trace)
    assert sum(s.attributes["caredio.retries"] for s in turns) == 1
    by_duration = sorted((s.end_time - s.start_time) // 1_000_000 for s in turns)
    assert by_duration == sorted(t["latency_ms"] for t in trace)
    assert min(by_duration) >= 20  # the stub's latency: a span covers its call
    assert all(s.name == f"{s.attributes['caredio.agent']}.{s.attributes['caredio.step']}"
               for s in turns)
