"""Throughput of CAReDiO's orchestration, and its overhead on the embedded model.

Part 1 (``orchestration``): the FAKE stub server (its own process, so its CPU is not counted)
answers every call after a fixed latency L with schema-valid filler. A real run — agents,
scorer with the real MiniLM embedder, SQLite checkpoints, records — optimizes S samples for
exactly R rounds at concurrency C. Reported: wall time of the run, the ideal
(total calls x L / C), their ratio, calls per sample and the framework's own CPU time per
call (this process's CPU time over the run / calls).

Part 2 (``embedded``): SmolLM2-135M through the whole stack (RoleLLM -> HTTP -> embedded
llama.cpp server) against llama-cpp-python called directly on the same prompt, for free
text and for grammar-constrained JSON (what function calling becomes on that server).

    python benchmarks/orchestration.py                      # part 1 at C=16, S=64, L=200 ms
    python benchmarks/orchestration.py --concurrency 4 --samples 16 --latency 0.05
    python benchmarks/orchestration.py --embedded           # part 2 too (needs the 'local' extra)

Timings are printed, never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the FAKE stub server lives with the tests, not in the package
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

TOPICS = ("food_drink", "dining_etiquette", "greetings_etiquette", "gift_giving")
CULTURES = ("Japan", "China")


def start_stub(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.stub_server",
                             "--latency", str(latency)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def orchestration(samples: int, rounds: int, concurrency: int, latency: float) -> dict[str, Any]:
    from caredio.memory.embeddings import default_embedder
    from caredio.records import RunRecorder, read_jsonl
    from caredio.runner import execute, prepare
    from tests.support.jobs import stub_settings

    per_topic, rest = divmod(samples, len(CULTURES) * len(TOPICS))
    if rest or not per_topic:
        raise SystemExit(f"--samples must be a multiple of {len(CULTURES) * len(TOPICS)}")
    embedder = default_embedder()
    stub, url = start_stub(latency)
    try:
        with tempfile.TemporaryDirectory() as out:
            settings = stub_settings(url, out, rounds=rounds, concurrency=concurrency,
                                     cultures=CULTURES, topics=TOPICS,
                                     samples_per_topic=per_topic)
            job = prepare(settings, embedder=embedder)
            run_dir = Path(out) / "bench"
            recorder = RunRecorder.create(run_dir, settings.snapshot(), job.templates)
            wall0, cpu0 = time.perf_counter(), time.process_time()
            record = asyncio.run(execute(job, run_dir, recorder, lambda kind, data: None))
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            trace = read_jsonl(run_dir / "trace.jsonl")
    finally:
        stub.terminate()
        stub.wait()
    calls = len(trace) + sum(t["retries"] for t in trace)
    ideal = calls * latency / concurrency
    return {
        "samples": samples, "rounds": rounds, "concurrency": concurrency, "latency_s": latency,
        "status": record["status"], "completed": record["completed"], "calls": calls,
        "calls_per_sample": round(calls / samples, 2), "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2), "ratio": round(wall / ideal, 3),
        "cpu_ms_per_call": round(1000 * cpu / calls, 2),
    }


def embedded(max_tokens: int, repeats: int) -> dict[str, Any]:
    """Tokens/s of SmolLM2-135M: llama-cpp-python directly vs. through CAReDiO's stack."""
    from llama_cpp import Llama

    from caredio.agents.culture_expert import ExpertAnswer
    from caredio.config import LLMSettings
    from caredio.llm import CallResult, MethodMemory, RequestLimiter, RoleLLM
    from caredio.local_llm import LocalLLMServer, packaged_gguf
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per stub answer")
    parser.add_argument("--embedded", action="store_true", help="also part 2 (slow)")
    parser.add_argument("--embedded-only", action="store_true")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.embedded_only:
        report = orchestration(args.samples, args.rounds, args.concurrency, args.latency)
        print(json.dumps({"orchestration": report}), flush=True)
    if args.embedded or args.embedded_only:
        print(json.dumps({"embedded": embedded(args.max_tokens, args.repeats)}), flush=True)


if __name__ == "__main__":
    main()
