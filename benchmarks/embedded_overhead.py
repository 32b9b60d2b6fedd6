"""Part 2 of benchmarks/orchestration.py (``--embedded``): the embedded model's tokens/s
through CAReDiO's whole stack (RoleLLM -> HTTP -> embedded llama.cpp server) against
llama-cpp-python called directly on the same prompt. Needs the 'local' extra.

    python benchmarks/orchestration.py --embedded-only
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any


def embedded(max_tokens: int, repeats: int) -> dict[str, Any]:
    """Tokens/s of SmolLM2-135M: llama-cpp-python directly vs. through CAReDiO's stack."""
    from llama_cpp import Llama

    from caredio.agents.culture_expert import ExpertAnswer
    from caredio.config.settings import LLMSettings
    from caredio.llm.client import CallResult, RoleLLM
    from caredio.llm.embedded import LocalLLMServer, packaged_gguf
    from caredio.llm.limits import RequestLimiter
    from caredio.llm.structured import MethodMemory
    from caredio.prompts import load_templates

    template = load_templates()["culture_expert_answer"]
    messages = template.render(
        culture="Japan", question="How do guests greet their hosts when visiting a home?",
        knowledge=["Shoes come off at the entrance.", "A small gift is customary."])
    threads = os.cpu_count() or 1
    schema = ExpertAnswer.model_json_schema()
    results: dict[str, Any] = {"max_tokens": max_tokens, "repeats": repeats}

    def rate(tokens: int, seconds: float) -> float:
        return round(tokens / seconds, 1) if seconds else 0.0

    model = Llama(model_path=str(packaged_gguf()), n_ctx=4096, n_threads=threads,
                  verbose=False, seed=0)
    for mode, extra in (("free_text", {}),
                        ("json_grammar", {"response_format": {"type": "json_object",
                                                              "schema": schema}})):
        model.create_chat_completion(messages=messages, max_tokens=8, temperature=0.0, **extra)
        tokens, seconds = 0, 0.0
        for _ in range(repeats):
            started = time.perf_counter()
            reply = model.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                                 temperature=0.0, **extra)
            seconds += time.perf_counter() - started
            tokens += reply["usage"]["completion_tokens"]
        results[f"direct_{mode}_tok_s"] = rate(tokens, seconds)
        results[f"direct_{mode}_tokens"] = tokens
    del model

    async def through_stack(llm: RoleLLM) -> dict[str, Any]:
        out: dict[str, Any] = {}
        await llm.chat.ainvoke(messages)  # warm-up
        tokens, seconds = 0, 0.0
        for _ in range(repeats):
            started = time.perf_counter()
            message = await llm.chat.ainvoke(messages)
            seconds += time.perf_counter() - started
            tokens += int((message.usage_metadata or {}).get("output_tokens", 0))
        out["stack_free_text_tok_s"], out["stack_free_text_tokens"] = rate(tokens, seconds), tokens
        await llm.structured(messages, ExpertAnswer)  # warm-up, finds the working method
        tokens, seconds = 0, 0.0
        for _ in range(repeats):
            result = CallResult(model=llm.model)
            started = time.perf_counter()
            await llm.structured(messages, ExpertAnswer, result)
            seconds += time.perf_counter() - started
            tokens += result.output_tokens
            out["stack_structured_method"] = result.method
        out["stack_structured_tok_s"], out["stack_structured_tokens"] = rate(tokens, seconds), tokens
        return out

    with LocalLLMServer() as server:
        settings = LLMSettings(temperature=0.0, max_tokens=max_tokens, timeout=600)
        llm = RoleLLM("culture_expert", settings, RequestLimiter(1), MethodMemory(),
                      server.base_url, server.model)
        results.update(asyncio.run(through_stack(llm)))
    results["overhead_free_text"] = _ratio(results["direct_free_text_tok_s"],
                                           results["stack_free_text_tok_s"])
    results["overhead_structured"] = _ratio(results["direct_json_grammar_tok_s"],
                                            results["stack_structured_tok_s"])
    return results


def _ratio(direct: float, stack: float) -> float | None:
    return round(direct / stack, 3) if stack else None
