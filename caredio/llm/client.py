"""LLM access: any OpenAI-compatible endpoint through ``langchain-openai``.

Structured output falls back json_schema -> function calling -> JSON mode -> prompt-and-parse,
because servers differ (llama-cpp-python's server answers 500 to ``json_schema``). The first
method that works for an endpoint is remembered. Transient errors (timeouts, 429, 5xx,
dropped connections) are retried with exponential backoff and jitter, honouring
``Retry-After``. A reply that does not parse is re-asked with the parse error fed back, then
the next method is tried; it never becomes an empty result.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import openai
from langchain_core.callbacks import BaseCallbackManager
from langchain_core.messages import AIMessage, convert_to_messages
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tracers.context import _tracing_v2_is_enabled
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import BaseChatOpenAI
from openai.types.chat import ChatCompletion
from pydantic import BaseModel

from caredio.config.settings import LLMSettings
from caredio.config.urls import public_url
from caredio.errors import EndpointDown, EndpointError, ModelOutputError
from caredio.llm.cache import ResponseCache, request_key
from caredio.llm.limits import RequestLimiter
from caredio.llm.liveness import Liveness, shared_ssl_context
from caredio.llm.retry import describe, is_fatal, is_method_rejection, is_transient, retry_after
from caredio.llm.structured import (
    LAST_TRY,
    MethodMemory,
    feedback,
    message_text,
    method_request,
    parse_message,
    reask_temperature,
    schema_instruction,
)

log = logging.getLogger(__name__)
_sleep = asyncio.sleep  # one seam, so tests can see the delays without waiting them out

T = TypeVar("T", bound=BaseModel)
V = TypeVar("V")


@dataclass
class CallResult:
    """What one agent turn cost and produced; becomes a trace line."""

    parsed: BaseModel | None = None
    output: str = ""
    method: str = ""
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: int = 0  # the whole turn: queue + requests + backoff between retries
    queue_ms: int = 0  # waiting for a request slot (the run's concurrency bound)
    request_ms: int = 0  # requests in flight, until the endpoint answered
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    # Where the turn belongs (sample and round), for llm.seed: the request's seed is a function
    # of it and the prompt, so a resumed sample sends what an uninterrupted one would have.
    seed_key: str = ""
    # The response cache (llm.cache): requests answered from it and sent past it; the tokens
    # the answered ones cost when first asked (not in input_tokens/output_tokens).
    cache_hits: int = 0
    cache_misses: int = 0
    cached_input_tokens: int = 0
    cached_output_tokens: int = 0

    @property
    def cached(self) -> bool:
        """Every request of the turn was answered by the cache: nothing was sent."""
        return self.cache_hits > 0 and self.cache_misses == 0


class RoleLLM:
    """One agent role's model: an endpoint, a model name and sampling settings."""

    def __init__(
        self,
        role: str,
        settings: LLMSettings,
        limiter: RequestLimiter,
        methods: MethodMemory,
        base_url: str,
        model: str,
        liveness: Liveness | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        effective = settings.for_role(role)
        self.cache = cache
        self.role = role
        self.settings = settings
        self.limiter = limiter
        self.methods = methods
        self.base_url = effective.base_url or base_url
        self.public_url = public_url(self.base_url)
        self.model = effective.model or model
        self.temperature = settings.temperature if effective.temperature is None else effective.temperature
        # Calls to an endpoint with a health URL are given up by the liveness watch (no sign
        # of life for `timeout` seconds), not by the socket: a slow reply is not abandoned.
        self.liveness = liveness if self.base_url == base_url else None
        timeout: float | openai.Timeout = settings.timeout
        if self.liveness is not None:
            timeout = openai.Timeout(None, connect=max(settings.timeout, 30.0))
        self._api_key = (os.environ.get(settings.api_key_env) or os.environ.get("CAREDIO_API_KEY")
                         or "not-needed")
        # ChatOpenAI renames max_tokens to max_completion_tokens, which llama.cpp, Ollama and
        # older vLLM ignore (generation then runs to the context limit); the base class sends
        # the field every OpenAI-compatible server knows. The SDK's own retries are off:
        # retries below are visible in the trace.
        chat_class = (ChatOpenAI if settings.max_tokens_field == "max_completion_tokens"
                      else BaseChatOpenAI)
        self.chat = chat_class(
            model=self.model,
            base_url=self.base_url,
            api_key=self._api_key,  # type: ignore[arg-type]
            temperature=effective.temperature,
            max_tokens=effective.max_tokens,  # type: ignore[call-arg]
            timeout=timeout,
            max_retries=0,
            # Our own client, not langchain's process-wide cached one: that one stays bound
            # to the first event loop, and a second run in the same process would fail. Both
            # clients (the sync one is never used) on the process's one TLS context.
            http_async_client=openai.DefaultAsyncHttpxClient(timeout=timeout, verify=shared_ssl_context()),
            http_client=openai.DefaultHttpxClient(timeout=timeout, verify=shared_ssl_context()),
        )
        self._requests: dict[tuple[type[BaseModel], str], dict[str, Any]] = {}
        # What else decides a reply, for the cache key (the request fields carry the rest).
        self._sampling = {"temperature": effective.temperature, "max_tokens": effective.max_tokens,
                          "max_tokens_field": settings.max_tokens_field}

        # How often each prompt was sent, for calls without a seed key (llm.seed): a prompt
        # asked again gets a new seed, the same prompt in a rerun the same one.
        self._asked: dict[str, int] = {}
        self._asked_lock = threading.Lock()

    def _request_options(self, messages: list[dict[str, str]], seed_key: str = "",
                         ) -> tuple[dict[str, Any], str]:
        """Per-request fields (the sampling seed when ``llm.seed`` is set), and where the
        request stands among identical ones (part of its cache key).

        With a ``seed_key`` (an agent turn's sample and round) the seed depends on it and the
        prompt only: best-of-n's candidates (one round each) differ, and a resume repeats them.
        Without one, on how often this process has sent the prompt.
        """
        if self.settings.seed is None and self.cache is None:
            return {}, ""
        prompt = json.dumps(messages, sort_keys=True, ensure_ascii=False)
        if seed_key:
            where = f"key={seed_key}"
        else:
            with self._asked_lock:
                where = f"count={self._asked.get(prompt, 0)}"
                self._asked[prompt] = self._asked.get(prompt, 0) + 1
        if self.settings.seed is None:
            return {}, where
        digest = hashlib.sha256(f"{self.settings.seed}\x1f{self.role}\x1f{where}\x1f{prompt}".encode())
        return {"seed": int.from_bytes(digest.digest()[:4], "big") >> 1}, where

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}#{self.model}"

    def _confirmed(self, method: str) -> bool:
        return self.methods.working.get(self.endpoint) == method

    def _scrub(self, text: str) -> str:
        """Server messages may echo the request; never let the key or the URL's secrets out."""
        if self._api_key and self._api_key != "not-needed":
            text = text.replace(self._api_key, "***")
        return text.replace(self.base_url, self.public_url)[:300]

    def _status_error(self, exc: openai.APIStatusError) -> EndpointError:
        detail = "" if is_fatal(exc) else f": {self._scrub(str(exc.message))}"
        message = f"{self.public_url}: {describe(exc)}{detail}"
        return EndpointDown(message) if is_fatal(exc) else EndpointError(message)

    async def structured(
        self, messages: list[dict[str, str]], schema: type[T], result: CallResult | None = None,
        context: dict[str, Any] | None = None,
    ) -> tuple[T, CallResult]:
        """Ask for an instance of ``schema``; raises EndpointError or ModelOutputError.

        ``result`` is filled in as the call goes, so a caller can record retries and errors
        of a call that failed in the end. ``context`` is the pydantic validation context of
        the reply: a field it makes the schema refuse is re-asked like a parse error.
        """
        result = result if result is not None else CallResult(model=self.model)
        started = time.monotonic()
        last_output_error: ModelOutputError | None = None
        rejections: list[str] = []
        try:
            candidates = self.methods.candidates(self.endpoint)
            for method in candidates:
                conversation = list(messages)
                for attempt in range(self.settings.parse_retries + 1):
                    # The checks may repair, on the last try only, what they refuse before.
                    last = method == candidates[-1] and attempt == self.settings.parse_retries
                    rules = {**context, LAST_TRY: True} if context is not None and last else context
                    try:
                        parsed = await self._invoke(conversation, schema, method, result,
                                                    reask_temperature(self.temperature, attempt), rules)
                    except openai.APIStatusError as exc:
                        if is_method_rejection(exc) and not self._confirmed(method):
                            rejections.append(f"{method}: {exc.status_code}")
                            result.errors.append(
                                f"{method}: rejected by endpoint ({exc.status_code})")
                            log.info("%s: %s rejected (%s), falling back", self.role, method,
                                     exc.status_code)
                            self.methods.reject(self.endpoint, method)
                            break
                        raise self._status_error(exc) from exc
                    except ModelOutputError as exc:  # unparsable, or cut off at max_tokens
                        last_output_error = exc
                        result.errors.append(f"{method}: {exc}")
                        result.retries += 1
                        conversation = [*conversation, *feedback(exc)]
                        continue
                    self.methods.confirm(self.endpoint, method)
                    result.parsed = parsed
                    result.method = method
                    return parsed, result
        finally:
            result.latency_ms = 0 if result.cached else int((time.monotonic() - started) * 1000)
        if last_output_error is not None:
            raise last_output_error
        tried = "; ".join(rejections) or "none left to try"
        raise EndpointError(f"{self.public_url}: no structured-output method accepted by the "
                            f"endpoint for model '{self.model}' ({tried})")

    async def text(self, messages: list[dict[str, str]], result: CallResult | None = None
                   ) -> tuple[str, CallResult]:
        """A plain reply, for prompts that ask for free text (evaluation questions).

        Same limits, retries and endpoint-health checks as :meth:`structured`; a 500 is
        retried like any transient error (no structured-output method is being probed).
        """
        result = result if result is not None else CallResult(model=self.model)
        started = time.monotonic()
        try:
            result.output = await self._answer({}, messages, result, lambda: False, "text",
                                               message_text)
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from exc
        finally:
            result.latency_ms = 0 if result.cached else int((time.monotonic() - started) * 1000)
        result.method = "text"
        return result.output, result

    async def _invoke(self, messages: list[dict[str, str]], schema: type[T], method: str,
                      result: CallResult, temperature: float | None = None,
                      rules: dict[str, Any] | None = None) -> T:
        """One request of ``method`` and its reply as ``schema``, checked with ``rules``."""
        if method in ("json_mode", "prompt"):
            last = messages[-1]
            content = last["content"] + schema_instruction(schema)
            messages = [*messages[:-1], {**last, "content": content}]
        request = self._request(schema, method)
        if temperature is not None:  # a re-ask (cached request fields are never changed)
            request = {**request, "temperature": temperature}

        def accept(message: AIMessage) -> T:
            result.output = message_text(message)  # the trace shows a refused reply too
            return parse_message(message, schema, method, rules)

        return await self._answer(request, messages, result, lambda: not self._confirmed(method),
                                  method, accept)

    async def _answer(self, request: dict[str, Any], messages: list[dict[str, str]],
                      result: CallResult, probe: Callable[[], bool], method: str,
                      accept: Callable[[AIMessage], V]) -> V:
        """The accepted reply to one request: the cache's when it holds one the checks still
        accept, else sent (:meth:`_send`); stored only once ``accept`` took it, so a refused
        reply or an error never enters the cache."""
        options, place = self._request_options(messages, result.seed_key)
        cache, key = self.cache, ""
        if cache is not None:
            key = request_key(cache.endpoint(self.public_url), self.model, messages,
                              {**request, **options}, self._sampling, method, place)
            if (hit := cache.get(key)) is not None:
                try:
                    value = accept(hit.message)
                except ModelOutputError:
                    cache.drop(key)  # refused by today's checks: ask again, as if never stored
                else:
                    result.cache_hits += 1
                    result.cached_input_tokens += hit.input_tokens
                    result.cached_output_tokens += hit.output_tokens
                    return value
            result.cache_misses += 1
        message = await self._send({**request, **options}, messages, result, probe)
        value = accept(message)  # raises on a refused reply: nothing stored
        if cache is not None:
            cache.put(key, message, cache.endpoint(self.public_url), self.model)
        return value

    def _request(self, schema: type[BaseModel], method: str) -> dict[str, Any]:
        """The request fields of a structured-output method (built once per schema and method:
        a JSON schema is not free to compute)."""
        key = (schema, method)
        if key not in self._requests:
            self._requests[key] = method_request(self.chat, schema, method)
        return self._requests[key]

    async def _complete(self, messages: list[dict[str, str]], request: dict[str, Any]) -> AIMessage:
        """One chat completion as a langchain AIMessage.

        With callbacks or a LangChain tracer listening (the run's, propagated through the
        graph), through ``ChatOpenAI.ainvoke``, so they see the call as they would any other.
        With nobody listening, the same request payload (ChatOpenAI builds it) goes straight
        to the OpenAI SDK (``post``, below) and the reply becomes the same AIMessage: it skips
        langchain's callback set-up, the ``parse`` path with its raw-response wrapper, and a
        thread hand-off per reply (11.1 -> 5.7 ms of CPU per call at C=16 when it landed,
        benchmarks/orchestration.py).
        """
        if self._listened():
            runnable = self.chat.bind(**request) if request else self.chat
            message = await runnable.ainvoke(messages)
            assert isinstance(message, AIMessage)
            return message
        payload = self.chat._get_request_payload(convert_to_messages(messages), **request)
        # The SDK's post(), not create(): create() first walks the whole payload against its
        # TypedDict annotations (a no-op for these plain fields, ~0.5 ms of CPU per call);
        # post() keeps the SDK's errors, auth and response model.
        # cast_to=object: the reply's JSON as it came, which _create_chat_result reads as it
        # is; a ChatCompletion would be built field by field only to be dumped back to a dict
        # there (0.27 -> 0.03 ms of CPU per reply, timed alone on a typical reply).
        reply = await self.chat.root_async_client.post(
            "/chat/completions", cast_to=object, body=payload)
        if not isinstance(reply, dict):  # a body that is not JSON (the SDK then returns text)
            raise EndpointError(f"{self.public_url}: the reply is not a JSON chat completion: "
                                f"{self._scrub(str(reply))[:120]!r}")
        choices = reply.get("choices") or [{}]
        if choices[0].get("finish_reason") == "length" and "response_format" in request:
            # What the SDK's parse() raises for a cut-off structured reply.
            raise openai.LengthFinishReasonError(completion=ChatCompletion.model_construct(**reply))
        generation = self.chat._create_chat_result(reply).generations[0]
        assert isinstance(generation.message, AIMessage)
        return generation.message

    def _listened(self) -> bool:
        """Whether a callback handler or a LangChain tracer would see this call.

        Read from the config the graph put in this task's context (ensure_config() plus a
        callback manager would cost ~0.25 ms per call; this costs microseconds).
        """
        callbacks = (var_child_runnable_config.get() or {}).get("callbacks")
        handlers = callbacks.handlers if isinstance(callbacks, BaseCallbackManager) else callbacks
        return bool(handlers) or bool(self.chat.callbacks) or bool(_tracing_v2_is_enabled())

    async def _send(self, request: dict[str, Any], messages: list[dict[str, str]],
                    result: CallResult, probe: Callable[[], bool]) -> AIMessage:
        """One request, retried on transient errors with backoff and jitter.

        ``probe()``: this structured-output method is not known to work on this endpoint, so a
        repeated 500 may mean "unsupported request shape" (llama.cpp answers json_schema so):
        after one retry it goes up to the method fallback instead of being retried further.
        """
        health = self.limiter.endpoint_health(self.base_url)
        attempt = 0
        while True:
            health.check(self.base_url)
            queued = time.monotonic()
            try:
                async with self.limiter:
                    sent = time.monotonic()
                    result.queue_ms += int((sent - queued) * 1000)
                    try:
                        if self.liveness is None:
                            message = await self._complete(messages, request)
                        else:
                            self.liveness.check_process()
                            message = await self.liveness.watch(
                                self._complete(messages, request),
                                self.settings.timeout, self.base_url)
                    except openai.RateLimitError as exc:
                        # Paused while this call still holds its permit: given back first, the
                        # permit could go to a waiting request (on another Ray worker) before
                        # the pause reached the run's coordinator, and it ignored Retry-After.
                        if (asked := retry_after(exc)) is not None and not is_fatal(exc):
                            self.limiter.pause(asked)
                        raise
                    finally:
                        result.request_ms += int((time.monotonic() - sent) * 1000)
            except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError) as exc:
                # The SDK's structured-output parser raises these instead of returning the reply.
                raise ModelOutputError(f"reply unusable: {type(exc).__name__}", raw="") from exc
            except (openai.APIError, httpx.TransportError) as exc:
                if not is_transient(exc) or is_fatal(exc):
                    raise
                description = describe(exc)
                if isinstance(exc, (openai.APIConnectionError, httpx.TransportError)):
                    health.failed(description)
                    health.check(self.base_url)
                # Asked at each failure: a concurrent call may have confirmed the method
                # meanwhile, and then a 500 is a transient error like any other.
                probing = isinstance(exc, openai.InternalServerError) and probe()
                if probing and attempt >= 1:
                    raise
                if attempt >= self.settings.max_retries:
                    raise EndpointError(
                        f"{self.public_url}: {description} after {attempt} retries") from exc
                delay = min(30.0, self.settings.backoff * 2**attempt) * random.uniform(0.5, 1.5)
                asked = retry_after(exc)
                if asked is not None:  # a 429's pause of the whole run began above
                    delay = max(delay, asked)
                attempt += 1
                result.retries += 1
                result.errors.append(description)
                # A 500 to a method not yet known to work is the expected probe (llama.cpp and
                # json_schema), not a problem worth a warning.
                log.log(logging.INFO if probing else logging.WARNING, "%s: %s; retry %d in %.1fs",
                        self.role, description, attempt, delay)
                await _sleep(delay)
                continue
            health.ok()
            usage = getattr(message, "usage_metadata", None) or {}
            result.input_tokens += int(usage.get("input_tokens", 0))
            result.output_tokens += int(usage.get("output_tokens", 0))
            return message
