"""Structured output: which method an endpoint accepts, and turning replies into models.

Methods, tried in order until one works: json_schema -> function calling -> JSON mode ->
prompt-and-parse. The first that works for an endpoint is remembered by
:class:`MethodMemory`, shared by all roles.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from langchain_core.messages import AIMessage
from pydantic import BaseModel, ValidationError

from caredio.config.settings import StructuredMethod
from caredio.errors import ModelOutputError

T = TypeVar("T", bound=BaseModel)
# The error type of a field whose content is unusable although it parses (empty, not a
# question, names the culture): see caredio.agents.checks.
UNUSABLE = "unusable_output"
LAST_TRY = "last_try"  # in a reply's validation context on the call's last attempt
REASK_TEMPERATURE_FLOOR = 0.7  # a re-ask starts from at least this ...
REASK_TEMPERATURE_STEP = 0.2  # ... plus this per re-ask ...
REASK_TEMPERATURE_CAP = 1.2  # ... up to this
METHOD_CHAIN: tuple[StructuredMethod, ...] = (
    "json_schema", "function_calling", "json_mode", "prompt",
)


class MethodMemory:
    """Which structured-output method works per endpoint, shared by all roles."""

    def __init__(self, preferred: StructuredMethod = "auto") -> None:
        self.preferred = preferred
        self.working: dict[str, StructuredMethod] = {}
        self.rejected: dict[str, set[str]] = {}

    def candidates(self, endpoint: str) -> list[StructuredMethod]:
        """Methods to try, in order: the one known to work, then the untried ones.

        While no method is known to work, rejected ones stay at the end of the list: a 500
        may have been bad luck rather than "not supported", and one unlucky start must never
        leave an endpoint with nothing to try.
        """
        if self.preferred != "auto":
            return [self.preferred]
        known = self.working.get(endpoint)
        rejected = self.rejected.get(endpoint, set())
        rest = [m for m in METHOD_CHAIN if m != known]
        untried = [m for m in rest if m not in rejected]
        if known:
            return [known, *untried]
        return untried + [m for m in rest if m in rejected]

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


def parse_reply(schema: type[T], payload: Any, raw: str, *, lenient: bool,
                context: dict[str, Any] | None = None) -> T:
    """Validate a payload against the schema; a bare-text reply fills a one-string schema.

    ``context`` is pydantic's validation context: the field checks of the agents' output
    models (``caredio.agents.checks``) read what this call's text must not contain from it.
    """
    wrapped = isinstance(payload, dict) and set(payload) == {"properties"}
    if wrapped and isinstance(payload["properties"], dict):
        payload = payload["properties"]  # small models echo the schema's wrapper back
    try:
        return _not_echoing(schema.model_validate(payload, context=context), raw)
    except ValidationError as exc:
        error = exc
    fields = schema.model_fields
    text_fields = [name for name, info in fields.items() if info.is_required()]
    # Bare text stands in for a missing structure, never for a field whose content was refused.
    if (lenient and len(text_fields) == 1 and isinstance(raw, str) and raw.strip()
            and not _unusable(error)):
        refusals: list[ValidationError] = []
        for text in _salvaged(text_fields[0], payload, raw):
            try:
                return _not_echoing(schema.model_validate({text_fields[0]: text}, context=context), raw)
            except ValidationError as exc:
                refusals.append(exc)
        error = refusals[0]  # the best candidate's problem is the one worth feeding back
    raise ModelOutputError(describe(error), raw=raw) from None


_SENTENCE_END = re.compile(r"[.!?。！？](?=\s|$)")


def _salvaged(field: str, payload: Any, raw: str) -> list[str]:
    """What a small model's reply to a one-text-field schema may still hold, best first.

    The one string of an object with a renamed key (``{"response": ...}`` for ``answer``); the
    field of a JSON object cut off at ``max_tokens``, up to its last whole sentence; the first
    line that ends with '?'; the bare text. Each is validated (and checked) like any reply, so
    a line that is a question can only become a question, never an answer.
    """
    found: list[str] = []
    if isinstance(payload, dict):
        strings = [v for v in payload.values() if isinstance(v, str) and v.strip()]
        if len(strings) == 1:
            found.append(strings[0].strip())
    cut = re.search(rf'"{re.escape(field)}"\s*:\s*"((?:[^"\\]|\\.)*)(")?', raw)
    if cut:
        try:
            text = json.loads(f'"{cut.group(1)}"')
        except json.JSONDecodeError:
            text = cut.group(1)
        ends = list(_SENTENCE_END.finditer(text))
        if cut.group(2):  # a whole string in a broken object ('{"answer": "..."' without "}")
            found.append(text.strip())
        elif ends:
            found.append(text[: ends[-1].end()].strip())
    # 'How do you greet someone?\nThe answer is: ...': the question, then chatter about it.
    asked = [line.strip() for line in raw.splitlines() if line.strip().endswith(("?", "？"))]
    found += asked[:1]
    found.append(raw.strip())
    return list(dict.fromkeys(t for t in found if t))


def _not_echoing(parsed: T, raw: str) -> T:
    """A text field holding its own description ("The insider's answer, 3 to 5 sentences, ...")
    is the format instructions copied back, not an answer: seen from SmolLM2-135M."""
    for name, field in type(parsed).model_fields.items():
        value = getattr(parsed, name)
        hint = " ".join((field.description or "").lower().split())[:40]
        if isinstance(value, str) and len(hint) >= 20 and hint in " ".join(value.lower().split()):
            raise ModelOutputError(f"reply unusable: field '{name}' repeats the format instructions "
                                   "instead of following them", raw=raw)
    return parsed


def _unusable(error: ValidationError) -> list[Any]:
    return [e for e in error.errors() if e["type"] == UNUSABLE]


def describe(error: ValidationError) -> str:
    """The first problem of a reply, as the model is told it: a refused field, or the schema."""
    refused = _unusable(error)
    first = refused[0] if refused else error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(root)"
    if refused:
        return f"reply unusable: field '{where}' {first['msg']}"
    return f"reply does not match the schema: {where}: {first['msg']}"


def message_text(message: AIMessage) -> str:
    """The reply as text: a tool call's arguments as JSON, else the content."""
    if message.tool_calls:
        return json.dumps(message.tool_calls[0]["args"], ensure_ascii=False)
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") if isinstance(part, dict) else str(part)
                   for part in content)


def feedback(exc: ModelOutputError) -> list[dict[str, str]]:
    """The unusable reply and the parse error, so the model can correct itself."""
    return [{"role": "assistant", "content": exc.raw[:2000]},
            {"role": "user", "content": f"That reply could not be used: {exc}. "
             "Answer again, fixing that and following the format exactly."}]


def parse_message(message: AIMessage, schema: type[T], method: str,
                  context: dict[str, Any] | None = None) -> T:
    """A reply of ``method`` as an instance of ``schema``, checked with ``context``; raises
    ModelOutputError (unparsable, or refused by the checks) with the reply as ``raw``."""
    if method == "function_calling":
        if message.tool_calls:
            args = message.tool_calls[0]["args"]
            return parse_reply(schema, args, message_text(message), lenient=False, context=context)
        if message.invalid_tool_calls:
            bad = message.invalid_tool_calls[0]
            raise ModelOutputError(
                f"tool call arguments are not valid JSON: {bad.get('error')}",
                raw=str(bad.get("args") or ""))
    text = message_text(message)
    if not text.strip():
        raise ModelOutputError("empty reply", raw=text)
    try:
        payload = extract_json(text)
    except ModelOutputError:
        if method == "prompt":
            return parse_reply(schema, None, text, lenient=True, context=context)
        raise
    return parse_reply(schema, payload, text, lenient=method == "prompt", context=context)


def method_request(chat: Any, schema: type[BaseModel], method: str) -> dict[str, Any]:
    """The request fields that ask ``chat`` (a ChatOpenAI) for ``schema`` by ``method``."""
    name = schema.__name__
    if method == "json_schema":
        return {"response_format": {
            "type": "json_schema", "json_schema": {"name": name, "schema": schema.model_json_schema()},
        }}
    if method == "function_calling":
        return dict(chat.bind_tools([schema], tool_choice=name).kwargs)
    if method == "json_mode":
        return {"response_format": {"type": "json_object"}}
    return {}


def reask_temperature(temperature: float, attempt: int) -> float | None:
    """A re-ask is sampled hotter: at a low temperature a small model answers the feedback
    with the same unusable reply, word for word (seen with SmolLM2-135M at 0.2). None on the
    first ask (the role's own temperature)."""
    if attempt == 0:
        return None
    return min(REASK_TEMPERATURE_CAP, max(temperature, REASK_TEMPERATURE_FLOOR)
               + REASK_TEMPERATURE_STEP * attempt)
