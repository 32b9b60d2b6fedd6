"""What every agent shares: render a template, ask its role's model, record the turn."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from caredio.errors import EndpointError, ModelOutputError
from caredio.llm.client import CallResult, RoleLLM
from caredio.prompts import PromptTemplate
from caredio.tracing.sinks import TraceSink

T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class TurnContext:
    """Where a turn belongs: filled in by the graph, opaque to the agents."""

    run_id: str
    sample_id: str
    round: int
    sink: TraceSink
    on_start: Callable[[dict[str, Any]], None] | None = None  # a turn begins (progress display)


async def run_turn(
    llm: RoleLLM,
    template: PromptTemplate,
    schema: type[T],
    context: TurnContext,
    rules: dict[str, Any] | None = None,
    **variables: Any,
) -> T:
    """One agent turn. The trace line is written whether the turn succeeds or fails.

    ``rules`` is the validation context of the reply (see ``caredio.agents.checks``): what
    its text fields must not contain in this turn.
    """
    messages = template.render(**variables)
    result = CallResult(model=llm.model, seed_key=f"{context.sample_id}#{context.round}")
    error = ""
    if context.on_start is not None:
        context.on_start({"sample_id": context.sample_id, "round": context.round,
                          "agent": template.spec.agent, "step": template.spec.step})
    try:
        parsed, _ = await llm.structured(messages, schema, result, context=rules)
        return parsed
    except (ModelOutputError, EndpointError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    except asyncio.CancelledError:
        # The run was interrupted, or a call made alongside this one failed for good and its
        # sample attempt ends (graph/sample.py, all_or_none).
        error = "cancelled (run interrupted or sample failed)"
        raise
    finally:
        context.sink.emit({
            "run_id": context.run_id,
            "sample_id": context.sample_id,
            "round": context.round,
            "agent": template.spec.agent,
            "step": template.spec.step,
            "template": template.name,
            "template_hash": template.hash,
            "messages": messages,
            "output": result.output,
            "parsed": result.parsed.model_dump() if result.parsed is not None else None,
            "model": llm.model,
            "method": result.method,
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
            # Answered by the response cache (llm.cache): nothing sent, so no latency; what the
            # cache's replies cost when first asked is counted apart, never in the tokens above.
            "cached": result.cached,
            "cache": {"hits": result.cache_hits, "misses": result.cache_misses,
                      "input_tokens": result.cached_input_tokens,
                      "output_tokens": result.cached_output_tokens} if llm.cache is not None else None,
            "latency_ms": result.latency_ms,
            "queue_ms": result.queue_ms,  # waiting for a request slot (--concurrency)
            "request_ms": result.request_ms,  # waiting for the endpoint's answers
            "retries": result.retries,
            "retry_reasons": result.errors,
            "error": error or None,
        })
