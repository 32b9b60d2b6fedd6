"""The two ways a structured call reaches the endpoint send the same request.

With nobody listening, RoleLLM hands ChatOpenAI's own request payload straight to the OpenAI
SDK (no langchain callback set-up, parse wrapper or thread hand-off); with a callback handler
in the config (a tracer, the run's callbacks), it goes through ``ChatOpenAI.ainvoke`` so the
handler sees the call. Against the FAKE stub server (it records request bodies): this is
about our client logic.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.runnables import RunnableLambda

from caredio.agents.contrast_critic import Critique
from caredio.config import LLMSettings
from caredio.llm import MethodMemory, RequestLimiter, RoleLLM
from tests.support.stub_server import FaultPlan, StubOpenAIServer

MESSAGES = [{"role": "system", "content": "You are an insider."},
            {"role": "user", "content": "How do guests greet their hosts?"}]


class SeenCalls(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.started: list[Any] = []
        self.ended = 0

    async def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.started.append(messages)

    async def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.ended += 1


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode", "prompt"])
def test_direct_and_langchain_paths_send_the_same_request_and_parse_alike(method: str) -> None:
    handler = SeenCalls()
    with StubOpenAIServer() as stub:
        llm = RoleLLM("contrast_critic", LLMSettings(max_tokens=123, temperature=0.3),
                      RequestLimiter(2), MethodMemory(method), stub.url, "stub-model")  # type: ignore[arg-type]

        async def both() -> tuple[Any, Any]:
            direct, _ = await llm.structured(MESSAGES, Critique)
            assert not handler.started  # nobody listened to the first call

            async def call(_: Any) -> Any:
                return (await llm.structured(MESSAGES, Critique))[0]

            traced = await RunnableLambda(call).ainvoke(None, {"callbacks": [handler]})
            return direct, traced

        direct, traced = asyncio.run(both())
    assert len(stub.requests) == 2
    assert stub.requests[0] == stub.requests[1]
    assert stub.requests[0]["max_tokens"] == 123 and stub.requests[0]["temperature"] == 0.3
    # The handler saw the second call as a chat model call, with the prompt.
    assert len(handler.started) == 1 and handler.ended == 1
    assert handler.started[0][0][-1].content.startswith(MESSAGES[-1]["content"])
    assert isinstance(direct, Critique) and isinstance(traced, Critique)


def test_a_direct_call_keeps_token_usage_and_retries() -> None:
    """What the trace records (tokens, retries) comes out of the direct path too."""
    from caredio.llm import CallResult

    with StubOpenAIServer(faults=FaultPlan(script=("500",))) as stub:
        llm = RoleLLM("contrast_critic", LLMSettings(backoff=0.01), RequestLimiter(2),
                      MethodMemory("json_schema"), stub.url, "stub-model")
        result = CallResult()
        asyncio.run(llm.structured(MESSAGES, Critique, result))
    assert result.retries == 1 and result.input_tokens > 0 and result.output_tokens > 0


@pytest.mark.parametrize("listened", [False, True])
def test_a_reask_on_either_path_is_hotter_and_keeps_the_earlier_failed_replies(listened: bool) -> None:
    """Issue 13's re-ask (hotter, the failed replies fed back in order) over issue 12's direct
    path as well as the langchain one: red if the merge drops either from one of the paths."""
    from caredio.llm import REASK_TEMPERATURE_FLOOR, REASK_TEMPERATURE_STEP

    with StubOpenAIServer(faults=FaultPlan(script=("invalid_json", "invalid_json"))) as stub:
        llm = RoleLLM("contrast_critic", LLMSettings(temperature=0.2, parse_retries=2),
                      RequestLimiter(2), MethodMemory("json_schema"), stub.url, "stub-model")

        async def call(_: Any) -> Any:
            return (await llm.structured(MESSAGES, Critique))[0]

        handler = SeenCalls()
        config: Any = {"callbacks": [handler]} if listened else {}
        parsed = asyncio.run(RunnableLambda(call).ainvoke(None, config))
    assert isinstance(parsed, Critique)
    assert len(handler.started) == (3 if listened else 0)
    temperatures = [r["temperature"] for r in stub.requests]
    assert temperatures == pytest.approx([0.2, REASK_TEMPERATURE_FLOOR + REASK_TEMPERATURE_STEP,
                                          REASK_TEMPERATURE_FLOOR + 2 * REASK_TEMPERATURE_STEP])
    # Each re-ask carries every earlier unusable reply, not only the last one.
    failed = [[m["content"] for m in r["messages"] if m["role"] == "assistant"]
              for r in stub.requests]
    assert [len(replies) for replies in failed] == [0, 1, 2]
    assert failed[2][0] == failed[1][0] and all("not JSON" in t for t in failed[2])
