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
from caredio.config.settings import LLMSettings
from caredio.llm.client import RoleLLM
from caredio.llm.limits import RequestLimiter
from caredio.llm.structured import MethodMemory
from testing.stub_server import FaultPlan, StubOpenAIServer

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
    from caredio.llm.client import CallResult

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
    from caredio.llm.structured import REASK_TEMPERATURE_FLOOR, REASK_TEMPERATURE_STEP

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


@pytest.mark.parametrize("listened", [False, True])
def test_a_reply_cut_off_at_max_tokens_is_asked_again_on_either_path(listened: bool) -> None:
    """A structured reply the endpoint stopped at max_tokens (finish_reason "length") is
    unusable and re-asked, named as such, whether the SDK's parse() (langchain's path) or our
    own check on the reply's JSON (the direct path) sees it. Red if the direct path drops the
    check: the half reply is then refused only as broken JSON, under another name."""
    from caredio.llm.client import CallResult

    with StubOpenAIServer(faults=FaultPlan(script=("cut_off",))) as stub:
        llm = RoleLLM("contrast_critic", LLMSettings(parse_retries=1), RequestLimiter(2),
                      MethodMemory("json_schema"), stub.url, "stub-model")
        result = CallResult()

        async def call(_: Any) -> Any:
            return (await llm.structured(MESSAGES, Critique, result))[0]

        handler = SeenCalls()
        config: Any = {"callbacks": [handler]} if listened else {}
        parsed = asyncio.run(RunnableLambda(call).ainvoke(None, config))
    assert isinstance(parsed, Critique) and len(stub.requests) == 2
    assert len(handler.started) == (2 if listened else 0)
    assert result.retries == 1
    assert result.errors == ["json_schema: reply unusable: LengthFinishReasonError"]


def test_a_reply_that_is_not_json_is_an_endpoint_error_naming_the_endpoint() -> None:
    """A 200 whose body is a web page (a proxy, a UI at the base URL) is the endpoint's
    fault, not the model's: no re-ask, one error that says where it came from."""
    from caredio.errors import EndpointError

    with StubOpenAIServer(faults=FaultPlan(script=("html",))) as stub:
        llm = RoleLLM("contrast_critic", LLMSettings(), RequestLimiter(2),
                      MethodMemory("json_schema"), stub.url, "stub-model")
        with pytest.raises(EndpointError) as caught:
            asyncio.run(llm.structured(MESSAGES, Critique))
    assert len(stub.requests) == 1
    assert str(caught.value).startswith(f"{stub.url}: the reply is not a JSON chat completion")
    assert "502 Bad Gateway" in str(caught.value)
