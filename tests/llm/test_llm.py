"""RoleLLM against the FAKE stub server: fallback chain, retries, parse-error feedback, limits.

No timing is asserted: delays are observed through ``caredio.llm.client._sleep`` (patched to
record and not wait) or are computed values of the limiter.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

import caredio.llm.client
import caredio.llm.limits
from caredio.config.settings import LLMSettings
from caredio.errors import EndpointDown, EndpointError, ModelOutputError
from caredio.llm.client import CallResult, RoleLLM
from caredio.llm.limits import RequestLimiter
from caredio.llm.structured import MethodMemory
from testing.stub_server import FaultPlan, StubOpenAIServer, dead_url

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say it."}]


class Answer(BaseModel):
    text: str
    points: list[str]


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff delays asked for by the client, without waiting them out."""
    seen: list[float] = []

    async def no_wait(seconds: float) -> None:
        seen.append(seconds)

    monkeypatch.setattr(caredio.llm.client, "_sleep", no_wait)
    monkeypatch.setattr(caredio.llm.limits, "_sleep", no_wait)  # the run-wide 429 pause too
    return seen


def make_llm(url: str, *, concurrency: int = 4, methods: MethodMemory | None = None,
             **llm: Any) -> RoleLLM:
    settings = LLMSettings(**{"timeout": 5.0, "backoff": 0.01, **llm})
    limiter = RequestLimiter(concurrency, settings.requests_per_minute, down_after=settings.down_after)
    return RoleLLM("culture_expert", settings, limiter, methods or MethodMemory(settings.structured_output),
                   url, "stub")


def ask(llm: RoleLLM, times: int = 1) -> tuple[Answer, CallResult]:
    """``times`` calls one after another in one event loop (the client is bound to it)."""
    async def calls() -> tuple[Answer, CallResult]:
        for _ in range(times):
            result = CallResult(model=llm.model)
            ask.last = result  # type: ignore[attr-defined]
            parsed, _ = await llm.structured(MESSAGES, Answer, result)
        return parsed, result

    return asyncio.run(calls())


def test_json_schema_rejected_falls_back_to_function_calling(delays: list[float]) -> None:
    with StubOpenAIServer(faults=FaultPlan(reject_json_schema=True)) as stub:
        memory = MethodMemory()
        llm = make_llm(stub.url, methods=memory)
        parsed, result = ask(llm)
        assert isinstance(parsed, Answer) and parsed.points
        assert result.method == "function_calling"
        assert memory.working[llm.endpoint] == "function_calling"
        assert "json_schema" in memory.rejected[llm.endpoint]
        kinds = [("tools" in r, (r.get("response_format") or {}).get("type")) for r in stub.requests]
        # json_schema tried twice (a lone 500 may be bad luck), then a tool call.
        assert kinds == [(False, "json_schema"), (False, "json_schema"), (True, None)]
        assert any("rejected by endpoint (500)" in e for e in result.errors)
    with StubOpenAIServer(faults=FaultPlan(reject_json_schema=True)) as stub:
        llm = make_llm(stub.url)
        ask(llm, times=2)  # the second call goes straight to the method that works
        assert "tools" in stub.requests[-1] and len(stub.requests) == 4


def test_a_confirmed_method_survives_a_random_500(delays: list[float]) -> None:
    with StubOpenAIServer(faults=FaultPlan(script=("ok", "500", "500"))) as stub:
        memory = MethodMemory()
        llm = make_llm(stub.url, methods=memory)
        _, result = ask(llm, times=2)
        assert result.method == "json_schema" and result.retries == 2
        assert result.errors == ["InternalServerError (500)"] * 2
        assert memory.rejected == {}


@pytest.mark.slow  # over 5 s: out of the fast lane
def test_retry_after_is_honoured_and_pauses_the_whole_run(delays: list[float]) -> None:
    with StubOpenAIServer(faults=FaultPlan(script=("429",), retry_after=7)) as stub:
        llm = make_llm(stub.url, structured_output="json_schema")
        before = llm.limiter._paused_until
        _, result = ask(llm)
        assert result.retries == 1 and result.errors == ["RateLimitError (429)"]
        assert delays and delays[0] >= 7.0  # backoff alone would be ~0.01 s
        assert llm.limiter._paused_until > before  # other requests wait too
        assert stub.stats["429"] == 1


def test_unparsable_reply_is_asked_again_with_the_error(delays: list[float]) -> None:
    with StubOpenAIServer(faults=FaultPlan(script=("invalid_json",))) as stub:
        llm = make_llm(stub.url, structured_output="function_calling")
        parsed, result = ask(llm)
        assert parsed.text and result.retries == 1
        assert "not valid JSON" in result.errors[0]
        second = stub.requests[1]["messages"]
        assert second[-2]["role"] == "assistant" and "not JSON" in second[-2]["content"]
        assert second[-1]["role"] == "user" and "could not be used" in second[-1]["content"]


def test_parse_failures_move_on_to_the_next_method(delays: list[float]) -> None:
    with StubOpenAIServer(faults=FaultPlan(script=("truncated", "truncated"))) as stub:
        llm = make_llm(stub.url, parse_retries=1)
        parsed, result = ask(llm)
        assert isinstance(parsed, Answer)
        assert result.method == "function_calling"  # json_schema gave up after 2 bad replies
        assert len(stub.requests) == 3


def test_always_empty_replies_raise_and_never_become_an_empty_result(delays: list[float]) -> None:
    with StubOpenAIServer(faults=FaultPlan(rate_empty=1.0)) as stub:
        llm = make_llm(stub.url, parse_retries=1)
        with pytest.raises(ModelOutputError, match="empty reply"):
            ask(llm)
        assert ask.last.parsed is None  # type: ignore[attr-defined]
        # every method was tried, each asked twice
        assert len(stub.requests) == 8


def test_transient_errors_exhaust_retries_into_an_endpoint_error(delays: list[float]) -> None:
    with StubOpenAIServer(faults=FaultPlan(rate_429=1.0, retry_after=0)) as stub:
        llm = make_llm(stub.url, structured_output="function_calling", max_retries=2)
        with pytest.raises(EndpointError, match=r"RateLimitError \(429\) after 2 retries"):
            ask(llm)
        assert len(stub.requests) == 3 and len(delays) == 2


def test_a_dead_endpoint_is_declared_down(delays: list[float]) -> None:
    llm = make_llm(dead_url(), structured_output="function_calling", max_retries=10,
                   down_after=0.001)
    with pytest.raises(EndpointDown, match="is down"):
        ask(llm)
    assert ask.last.retries == 2  # type: ignore[attr-defined]  # third failure trips it


def test_errors_never_show_url_credentials(delays: list[float]) -> None:
    with StubOpenAIServer(faults=FaultPlan(rate_500=1.0)) as stub:
        url = stub.url.replace("http://", "http://alice:s3cret@")
        llm = make_llm(url, structured_output="function_calling", max_retries=1)
        with pytest.raises(EndpointError) as info:
            ask(llm)
        assert "s3cret" not in str(info.value) and "alice" not in str(info.value)
        assert all("s3cret" not in e for e in ask.last.errors)  # type: ignore[attr-defined]


def test_limiter_bounds_requests_in_flight() -> None:
    with StubOpenAIServer(latency=0.05) as stub:
        llm = make_llm(stub.url, concurrency=3, structured_output="function_calling")

        async def many() -> None:
            await asyncio.gather(*(llm.structured(MESSAGES, Answer) for _ in range(12)))

        asyncio.run(many())
        assert stub.max_in_flight == 3  # bounded, and actually used
        assert llm.limiter.max_in_flight == 3


def test_requests_per_minute_spaces_request_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(caredio.llm.limits, "_sleep", no_wait)
    limiter = RequestLimiter(8, requests_per_minute=60)

    async def three() -> None:
        for _ in range(3):
            async with limiter:
                pass

    asyncio.run(three())
    assert len(waits) == 2 and waits[0] > 0.9 and waits[1] > 1.9  # computed, not measured


def test_role_clients_share_one_tls_context_and_still_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the CA store is what a TLS context costs (~35 ms each): built once per process,
    not once per role client. Counted at the loading itself, whatever builds the context."""
    import ssl

    from caredio.llm.liveness import shared_ssl_context

    shared_ssl_context()  # the process's one context, built before counting
    loads: list[int] = []
    original = ssl.SSLContext.load_verify_locations

    def counting(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    with StubOpenAIServer() as stub:
        llms = [make_llm(stub.url) for _ in range(3)]
        parsed, _ = ask(llms[0])
    assert loads == [] and parsed.text
