"""How often a model's first drafts pass the output checks (``caredio/agents/checks.py``).

A sample whose draft question or answer stays unusable after the re-asks fails, so this is the
share of samples a model can start at all. For each (culture, topic) the real culture expert
(real templates, real fallback chain and re-asks) writes a question, then answers it, against
the embedded llama.cpp server (or ``--base-url``). Knowledge comes from the starter pack, so no
embedder is needed. Reported per turn kind: usable on the first reply, usable after re-asks,
unusable; and the refusal reasons.

    python benchmarks/draft_usability.py                        # Japan, South Korea x 2 topics x 2
    python benchmarks/draft_usability.py --prompts OLD_DIR      # compare another template set
    python benchmarks/draft_usability.py --base-url URL --model NAME

Counts are printed and written to benchmarks/results/draft_usability.json, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CULTURES = ("Japan", "South Korea")
TOPICS = ("greetings_etiquette", "gift_giving")


class _Turns:
    """Keeps the trace records of the turns (what the run would write to trace.jsonl)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def emit(self, record: dict[str, Any]) -> None:
        self.records.append(record)


def _reason(text: str) -> str:
    """'function_calling: reply unusable: field 'answer' names 'Japan'; ...' -> the kind."""
    for kind in ("is empty", "is not a question", "too short", "names ", "repeats the question",
                 "asks questions", "asks about nothing", "JSON or code", "repeats the format instructions",
                 "does not match the schema", "not valid JSON", "no JSON",
                 "LengthFinishReasonError", "rejected by endpoint"):
        if kind in text:
            return kind.strip()
    return re.sub(r"\s+", " ", text)[:60]


async def _drafts(base_url: str, model: str, prompts: str | None, repeats: int,
                  temperature: float) -> tuple[list[dict[str, Any]], float]:
    from caredio.agents.base import TurnContext
    from caredio.agents.culture_expert import CultureExpert
    from caredio.config.settings import LLMSettings
    from caredio.errors import ModelOutputError
    from caredio.llm.client import RoleLLM
    from caredio.llm.limits import RequestLimiter
    from caredio.llm.structured import MethodMemory
    from caredio.memory.ingest import starter_pack
    from caredio.prompts import load_templates
    from caredio.topics import load_topics

    topics = {t.id: t for t in load_topics()}
    knowledge = starter_pack()
    settings = LLMSettings(temperature=temperature, timeout=600)
    llm = RoleLLM("culture_expert", settings, RequestLimiter(1), MethodMemory(), base_url, model)
    expert = CultureExpert(llm, load_templates(prompts))
    sink = _Turns()
    started = time.monotonic()
    for index in range(repeats):
        for culture in CULTURES:
            others = [c for c in CULTURES if c != culture]
            for topic_id in TOPICS:
                topic = topics[topic_id]
                facts = [k.text for k in knowledge if k.culture == culture and k.topic == topic_id][:6]
                context = TurnContext("bench", f"{culture}-{topic_id}-{index}", 0, sink)
                try:
                    question = await expert.write_question(context, culture, topic.name, topic.description,
                                                           facts, contrast=others)
                    await expert.answer(context, culture, question, facts)
                except ModelOutputError:
                    continue  # recorded in the turn; the sample would fail here
    return sink.records, time.monotonic() - started


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for step in ("question", "answer"):
        turns = [r for r in records if r["step"] == step]
        # Re-asks for the reply's content (not the method probe): "reply ...", "tool call ...".
        content = [[e for e in r["retry_reasons"] if "reply" in e or "tool call" in e] for r in turns]
        summary[step] = {
            "turns": len(turns),
            "usable_first_reply": sum(1 for r, c in zip(turns, content, strict=True)
                                      if r["error"] is None and not c),
            "usable_after_reasks": sum(1 for r, c in zip(turns, content, strict=True)
                                       if r["error"] is None and c),
            "unusable": sum(1 for r in turns if r["error"] is not None),
            "refusals": dict(Counter(_reason(e) for c in content for e in c).most_common()),
            "examples": [r["parsed"][step if step == "question" else "answer"]
                         for r in turns if r["parsed"]][:4],
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prompts", help="template directory (default: the packaged templates)")
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint (default: the embedded server)")
    parser.add_argument("--model", default="default")
    parser.add_argument("--repeats", type=int, default=2, help="passes over cultures x topics")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "draft_usability.json")
    args = parser.parse_args()
    if args.base_url:
        records, seconds = asyncio.run(_drafts(args.base_url, args.model, args.prompts, args.repeats,
                                               args.temperature))
        model = args.model
    else:
        from caredio.llm.embedded import LocalLLMServer

        with LocalLLMServer() as server:
            records, seconds = asyncio.run(_drafts(server.base_url, server.model, args.prompts,
                                                   args.repeats, args.temperature))
            model = server.model
    report = {"benchmark": "draft_usability", "model": model, "prompts": args.prompts or "packaged",
              "temperature": args.temperature, "seconds": round(seconds, 1), **summarize(records)}
    for step in ("question", "answer"):
        row = report[step]
        print(f"{step:8} {row['turns']:3} turns: {row['usable_first_reply']} usable on the first reply, "
              f"{row['usable_after_reasks']} after re-asks, {row['unusable']} unusable; "
              f"refusals {row['refusals']}")
    print(f"{seconds:.0f} s; examples: {report['question']['examples'][:2]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
