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
import json
import logging
import os
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import openai
from langchain_core.messages import AIMessage, BaseMessage
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import BaseChatOpenAI
from pydantic import BaseModel, ValidationError

from caredio.config import LLMSettings, StructuredMethod
from caredio.errors import EndpointError, ModelOutputError

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)
METHOD_CHAIN: tuple[StructuredMethod, ...] = ("json_schema", "function_calling", "json_mode", "prompt")
TRANSIENT = (
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.RateLimitError,
    openai.InternalServerError,
    httpx.TransportError,
)


@dataclass
class CallResult:
    """What one agent turn cost and produced; becomes a trace line."""

    parsed: BaseModel | None = None
    output: str = ""
    method: str = ""
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)


class RequestLimiter:
    """Bounds in-flight requests across the whole run, and optionally requests per minute."""

    def __init__(self, concurrency: int, requests_per_minute: float | None = None) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next_start = 0.0
        self._lock = asyncio.Lock()
        self.in_flight = 0

    async def __aenter__(self) -> RequestLimiter:
        await self._slots.acquire()
        if self._interval:
            async with self._lock:
                now = time.monotonic()
                wait = self._next_start - now
                self._next_start = max(now, self._next_start) + self._interval
            if wait > 0:
                await asyncio.sleep(wait)
        self.in_flight += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.in_flight -= 1
        self._slots.release()


class MethodMemory:
    """Which structured-output method works per endpoint, shared by all roles."""

    def __init__(self, preferred: StructuredMethod = "auto") -> None:
        self.preferred = preferred
        self.working: dict[str, StructuredMethod] = {}
        self.rejected: dict[str, set[str]] = {}

    def candidates(self, endpoint: str) -> list[StructuredMethod]:
        if self.preferred != "auto":
            return [self.preferred]
        if endpoint in self.working:
            known = self.working[endpoint]
            return [known] + [m for m in METHOD_CHAIN if m != known and m not in self.rejected.get(endpoint, set())]
        return [m for m in METHOD_CHAIN if m not in self.rejected.get(endpoint, set())]

    def reject(self, endpoint: str, method: str) -> None:
        if self.working.get(endpoint) != method:
            self.rejected.setdefault(endpoint, set()).add(method)

    def confirm(self, endpoint: str, method: StructuredMethod) -> None:
        self.working.setdefault(endpoint, method)


def schema_instruction(schema: type[BaseModel]) -> str:
    body = json.dumps(schema.model_json_schema(), indent=None)
    return (
        "\n\nReply with one JSON object and nothing else, matching this JSON schema:\n"
        f"```json\n{body}\n```"
    )


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """The first JSON object in a reply: fenced, bare, or embedded in prose."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        candidate = candidate.strip()
        start = candidate.find("{")
        while start != -1:
            try:
                value, _ = json.JSONDecoder().raw_decode(candidate[start:])
                return value
            except json.JSONDecodeError:
                start = candidate.find("{", start + 1)
    raise ModelOutputError("no JSON object in the reply", raw=text)


def parse_reply(schema: type[T], payload: Any, raw: str, *, lenient: bool) -> T:
    """Validate a payload against the schema; a bare-text reply fills a one-string schema."""
    if isinstance(payload, dict) and set(payload) == {"properties"} and isinstance(payload["properties"], dict):
        payload = payload["properties"]  # small models echo the schema's wrapper back
    try:
        return schema.model_validate(payload)
    except ValidationError as exc:
        fields = schema.model_fields
        text_fields = [name for name, info in fields.items() if info.is_required()]
        if lenient and len(text_fields) == 1 and isinstance(raw, str) and raw.strip():
            return schema.model_validate({text_fields[0]: raw.strip()})
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ModelOutputError(f"reply does not match the schema: {where}: {first['msg']}", raw=raw) from None


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _is_method_rejection(exc: BaseException) -> bool:
    """A status error that says 'this request shape is not supported' rather than 'try later'."""
    if isinstance(exc, openai.RateLimitError):
        return False
    return isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError, openai.InternalServerError, openai.NotFoundError))


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
    ) -> None:
        effective = settings.for_role(role)
        self.role = role
        self.settings = settings
        self.limiter = limiter
        self.methods = methods
        self.base_url = effective.base_url or base_url
        self.model = effective.model or model
        api_key = os.environ.get(settings.api_key_env) or os.environ.get("CAREDIO_API_KEY") or "not-needed"
        # ChatOpenAI renames max_tokens to max_completion_tokens, which llama.cpp, Ollama and
        # older vLLM ignore (generation then runs to the context limit); the base class sends
        # the field every OpenAI-compatible server knows. The SDK's own retries are off:
        # retries below are visible in the trace.
        chat_class = ChatOpenAI if settings.max_tokens_field == "max_completion_tokens" else BaseChatOpenAI
        self.chat = chat_class(
            model=self.model,
            base_url=self.base_url,
            api_key=api_key,  # type: ignore[arg-type]
            temperature=effective.temperature,
            max_tokens=effective.max_tokens,  # type: ignore[call-arg]
            timeout=settings.timeout,
            max_retries=0,
        )

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}#{self.model}"

    async def structured(
        self, messages: list[dict[str, str]], schema: type[T], result: CallResult | None = None
    ) -> tuple[T, CallResult]:
        """Ask for an instance of ``schema``; raises EndpointError or ModelOutputError.

        ``result`` is filled in as the call goes, so a caller can record retries and errors
        of a call that failed in the end.
        """
        result = result if result is not None else CallResult(model=self.model)
        started = time.monotonic()
        last_output_error: ModelOutputError | None = None
        for method in self.methods.candidates(self.endpoint):
            conversation = list(messages)
            for attempt in range(self.settings.parse_retries + 1):
                try:
                    message = await self._invoke(conversation, schema, method, result)
                except openai.APIStatusError as exc:
                    if _is_method_rejection(exc) and self.endpoint not in self.methods.working:
                        result.errors.append(f"{method}: rejected by endpoint ({exc.status_code})")
                        log.info("%s: %s rejected (%s), falling back", self.role, method, exc.status_code)
                        self.methods.reject(self.endpoint, method)
                        break
                    raise EndpointError(f"{self.base_url}: {type(exc).__name__}: {exc.status_code}") from exc
                try:
                    parsed = self._parse(message, schema, method)
                except ModelOutputError as exc:
                    last_output_error = exc
                    result.errors.append(f"{method}: {exc}")
                    result.retries += 1
                    conversation = [*messages, {"role": "assistant", "content": exc.raw[:2000]},
                                    {"role": "user", "content": f"That reply could not be used: {exc}. Answer again, following the format exactly."}]
                    continue
                self.methods.confirm(self.endpoint, method)
                result.parsed = parsed
                result.method = method
                result.latency_ms = int((time.monotonic() - started) * 1000)
                return parsed, result
        result.latency_ms = int((time.monotonic() - started) * 1000)
        if last_output_error is not None:
            raise last_output_error
        raise EndpointError(f"{self.base_url}: no structured-output method accepted by the endpoint")

    async def _invoke(self, messages: list[dict[str, str]], schema: type[BaseModel], method: str, result: CallResult) -> AIMessage:
        name = schema.__name__
        if method in ("json_mode", "prompt"):
            messages = [*messages[:-1], {**messages[-1], "content": messages[-1]["content"] + schema_instruction(schema)}]
        runnable: Any = self.chat
        if method == "json_schema":
            runnable = self.chat.bind(response_format={"type": "json_schema", "json_schema": {"name": name, "schema": schema.model_json_schema()}})
        elif method == "function_calling":
            runnable = self.chat.bind_tools([schema], tool_choice=name)
        elif method == "json_mode":
            runnable = self.chat.bind(response_format={"type": "json_object"})
        message = await self._send(runnable, messages, result)
        result.output = _message_text(message)
        return message

    async def _send(self, runnable: Any, messages: list[dict[str, str]], result: CallResult) -> AIMessage:
        attempt = 0
        while True:
            try:
                async with self.limiter:
                    message: BaseMessage = await runnable.ainvoke(messages)
            except TRANSIENT as exc:
                if attempt >= self.settings.max_retries:
                    raise EndpointError(f"{self.base_url}: {_describe(exc)} after {attempt} retries") from exc
                if isinstance(exc, openai.InternalServerError) and self.endpoint not in self.methods.working:
                    raise  # maybe an unsupported request shape: let the method fallback decide
                delay = min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.5)
                delay = max(delay, _retry_after(exc) or 0.0)
                attempt += 1
                result.retries += 1
                result.errors.append(_describe(exc))
                log.warning("%s: %s; retry %d in %.1fs", self.role, _describe(exc), attempt, delay)
                await asyncio.sleep(delay)
                continue
            usage = getattr(message, "usage_metadata", None) or {}
            result.input_tokens += int(usage.get("input_tokens", 0))
            result.output_tokens += int(usage.get("output_tokens", 0))
            assert isinstance(message, AIMessage)
            return message

    def _parse(self, message: AIMessage, schema: type[T], method: str) -> T:
        if method == "function_calling":
            if message.tool_calls:
                return parse_reply(schema, message.tool_calls[0]["args"], result_text(message), lenient=False)
            if message.invalid_tool_calls:
                bad = message.invalid_tool_calls[0]
                raise ModelOutputError(f"tool call arguments are not valid JSON: {bad.get('error')}", raw=str(bad.get("args") or ""))
        text = _message_text(message)
        if not text.strip():
            raise ModelOutputError("empty reply", raw=text)
        try:
            payload = extract_json(text)
        except ModelOutputError:
            if method == "prompt":
                return parse_reply(schema, None, text, lenient=True)
            raise
        return parse_reply(schema, payload, text, lenient=method == "prompt")


def result_text(message: AIMessage) -> str:
    return json.dumps(message.tool_calls[0]["args"], ensure_ascii=False) if message.tool_calls else _message_text(message)


def _message_text(message: AIMessage) -> str:
    if message.tool_calls:
        return json.dumps(message.tool_calls[0]["args"], ensure_ascii=False)
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" ({status})" if status else "")
