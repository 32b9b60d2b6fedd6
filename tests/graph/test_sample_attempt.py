"""What a sample attempt holds ends with it: its LLM calls and its request permits.

Plain asyncio (no Ray), against the FAKE stub server, with the FAKE hash embedder where a
memory is needed (these tests are about orchestration). The request limit is the run's real
RunCoordinator as a Ray worker reaches it (RemoteLimiter, the coordinator behind an
in-process stand-in for its actor handle), in the name of one holder per sample attempt: what
the driver gives back with ``release_holder`` once the attempt has ended.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel

from caredio.config.settings import LLMSettings
from caredio.graph.toolkit import Evidence, Outputs, Recipe, Toolkit
from caredio.llm.client import RoleLLM
from caredio.llm.structured import MethodMemory
from caredio.memory.questions import QuestionBook
from caredio.run.agent_factory import build_agents
from caredio.run.executors.coordination import RunCoordinator
from caredio.run.executors.local import LocalExecutor
from caredio.run.executors.ray_worker import HOLDER, RemoteLimiter
from caredio.run.job import prepare
from testing.actors import InProcessActor
from testing.jobs import stub_settings
from testing.stub_server import FaultPlan, StubOpenAIServer


class Collected:
    """The attempt's records (the recorder and trace sink a Ray worker forwards to the driver)."""

    def __init__(self) -> None:
        self.turns: list[dict[str, Any]] = []
        self.started: list[dict[str, Any]] = []

    def write_version(self, version: dict[str, Any]) -> None:
        pass

    def write_sample(self, line: dict[str, Any]) -> bool:
        return True

    def emit(self, record: dict[str, Any]) -> None:
        self.turns.append(record)

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "turn_started":
            self.started.append(data)


async def _until(ready: Callable[[], bool]) -> None:
    for _ in range(3000):
        if ready():
            return
        await asyncio.sleep(0.01)
    pytest.fail("timed out")


def _contrast_rule(body: dict[str, Any]) -> str | None:
    """China's contrast answer is refused (400: an error no retry or fallback mends once the
    endpoint's structured-output method is known); South Korea's, asked at the same time, is
    slow."""
    text = json.dumps(body["messages"])
    if "typical in China" in text:
        return "bad_request"
    if "typical in South Korea" in text:
        return "slow"
    return None


def test_a_contrast_call_that_fails_for_good_ends_its_siblings_before_the_attempt_ends(
        tmp_path: Path, fake_embedder: Any) -> None:
    """A Japanese sample's two contrast answers (China, South Korea) are asked concurrently;
    China's fails for good while South Korea's is still at the endpoint. When the attempt
    has ended (failed), none of its calls may still run or hold a permit. They did: South
    Korea's call went on after the sample had failed, holding its permit, which the driver's
    release_holder then gave back while the request was still in flight (the run's request
    limit exceeded), and its turn was traced only after the attempt had ended."""
    holder = "japan-food_drink-000#1"

    async def scenario(url: str) -> None:
        settings = stub_settings(url, str(tmp_path), cultures=("Japan",), concurrency=4)
        job = prepare(settings, embedder=fake_embedder)
        try:
            run = RunCoordinator(concurrency=4)
            limiter = RemoteLimiter(InProcessActor(run, []), settings.llm.down_after)
            agents = build_agents(settings, job.templates, url, "stub", None, limiter)
            records = Collected()
            assert job.knowledge is not None
            toolkit = Toolkit(agents, Evidence(job.knowledge, job.scorer, QuestionBook(job.memory)),
                              Outputs(records, records, records.on_event), Recipe(settings.loop))
            executor = LocalExecutor(toolkit, InMemorySaver())
            spec = job.plan("run")[0]
            assert spec["contrast"] == ["China", "South Korea"]
            context = contextvars.Context()
            context.run(HOLDER.set, holder)
            result = await executor.optimize(spec, None, context=context)

            # The attempt has ended: the driver would now call release_holder(holder).
            assert result["status"] == "failed" and "EndpointError" in result["error"]
            assert run.permits[holder] == 0 and run.limiter.in_flight == 0
            assert len(records.turns) == len(records.started)  # every turn it began has ended
            korea = [t for t in records.turns if "typical in South Korea" in json.dumps(t["messages"])]
            assert len(korea) == 1 and korea[0]["error"].startswith("cancelled")
            assert await run.release_holder(holder) == 0
        finally:
            job.memory.close()

    faults = FaultPlan(rule=_contrast_rule, slow_seconds=5.0)
    with StubOpenAIServer(faults=faults) as stub:
        asyncio.run(scenario(stub.url))
    assert stub.stats["slow"] == 1 and stub.stats["bad_request"] == 1


class Reply(BaseModel):
    text: str


def test_a_permit_granted_to_a_cancelled_wait_goes_back_at_once() -> None:
    """The run's only permit is taken; attempt a's call waits for it at the coordinator and is
    cancelled (as a sibling of a failed call is). The coordinator still grants that wait the
    permit once it is free (a cancelled await of a Ray call does not cancel the call), and it
    must go back at once: it was held, unused, until a's attempt ended, and b's call waited."""

    async def scenario(url: str) -> None:
        run = RunCoordinator(concurrency=1)
        delivered: list[tuple[str, tuple[Any, ...]]] = []
        limiter = RemoteLimiter(InProcessActor(run, delivered), 60.0)
        settings = LLMSettings(timeout=10.0, backoff=0.01, structured_output="json_schema")

        async def call(holder: str) -> None:
            HOLDER.set(holder)
            llm = RoleLLM("contrast_critic", settings, limiter, MethodMemory("json_schema"), url,
                          "stub")
            await llm.structured([{"role": "user", "content": f"Hello from {holder}"}], Reply)

        await run.acquire("other#1")  # the only permit
        waiting = asyncio.ensure_future(call("a#1"))
        await _until(lambda: ("acquire", ("a#1",)) in delivered)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await run.release("other#1")  # free: the coordinator grants it to a's cancelled wait
        await asyncio.wait_for(call("b#1"), 10)  # b is not kept waiting until a's attempt ends
        assert run.permits["a#1"] == 0 and run.limiter.in_flight == 0

    with StubOpenAIServer() as stub:
        asyncio.run(scenario(stub.url))
    assert [json.dumps(r["messages"]).count("b#1") for r in stub.requests] == [1]  # a sent none
