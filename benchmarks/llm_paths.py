"""CPU per structured call: RoleLLM's direct path against LangChain's public one, and the raw SDK.

RoleLLM sends a structured call straight to the OpenAI SDK when no callback handler or tracer
listens (``RoleLLM._complete``: ChatOpenAI's own payload and reply parsing, without its
callback set-up); with one listening it goes through ``ChatOpenAI.ainvoke``. This measures
both on the same work, interleaved, with the raw ``openai`` SDK as the floor: ``--calls``
structured calls (function calling, the method the embedded server takes) at ``--concurrency``
in flight, against the FAKE stub server in its own process (``--varied-text``: no reply
repeats), counting this process's CPU only.

    python benchmarks/llm_paths.py --calls 400 --concurrency 16 --repeats 3
    python benchmarks/llm_paths.py --cache --calls 400 --repeats 5   # the response cache's cost

``--cache``: the direct path with the response cache (caredio/llm/cache.py) on a fresh SQLite
file (every call a miss: looked up, sent, stored) and again on the same file with a new client
(every call a hit: nothing sent), beside the cache off, interleaved. A hit's CPU is the whole
call's: the lookup, reading the stored reply back into a message, and parsing it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the FAKE stub server lives with the test support, not the package
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

MESSAGES = [{"role": "system", "content": "You are an insider of the culture."},
            {"role": "user", "content": "How do guests greet their hosts at a family dinner?"}]


def start_stub(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "testing.stub_server", "--varied-text",
                             "--latency", str(latency)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


async def caredio_calls(url: str, calls: int, concurrency: int, langchain: bool) -> float:
    """CPU seconds of ``calls`` structured calls through RoleLLM (direct or LangChain path)."""
    from caredio.agents.culture_expert import ExpertAnswer
    from caredio.config.settings import LLMSettings
    from caredio.llm.client import RoleLLM
    from caredio.llm.limits import RequestLimiter
    from caredio.llm.structured import MethodMemory

    llm = RoleLLM("culture_expert", LLMSettings(max_tokens=96), RequestLimiter(concurrency),
                  MethodMemory("function_calling"), url, "stub")
    if langchain:  # what a listening callback handler makes it take: ChatOpenAI.ainvoke
        llm._listened = lambda: True  # type: ignore[method-assign]
    await llm.structured(MESSAGES, ExpertAnswer)  # the request shape is built once, not timed
    try:
        return await _timed(calls, concurrency, lambda: llm.structured(MESSAGES, ExpertAnswer))
    finally:
        await llm.chat.root_async_client.close()  # type: ignore[union-attr]


async def cached_calls(url: str, calls: int, concurrency: int, path: Path) -> tuple[float, float]:
    """CPU seconds of ``calls`` misses on a fresh cache file, then of the same calls as hits.

    No seed key: each call's place is how often this client sent the prompt, so the calls of
    one client are distinct keys, and a second client sends the same keys again."""
    from caredio.agents.culture_expert import ExpertAnswer
    from caredio.config.settings import LLMSettings
    from caredio.llm.cache import ResponseCache
    from caredio.llm.client import RoleLLM
    from caredio.llm.limits import RequestLimiter
    from caredio.llm.structured import MethodMemory

    cpu = []
    with ResponseCache.open(path) as cache:
        for _ in ("misses", "hits"):
            llm = RoleLLM("culture_expert", LLMSettings(max_tokens=96), RequestLimiter(concurrency),
                          MethodMemory("function_calling"), url, "stub", cache=cache)
            await llm.structured(MESSAGES, ExpertAnswer)  # as above: the request shape, not timed
            try:
                cpu.append(await _timed(calls, concurrency,
                                        lambda llm=llm: llm.structured(MESSAGES, ExpertAnswer)))
            finally:
                await llm.chat.root_async_client.close()  # type: ignore[union-attr]
    return cpu[0], cpu[1]


async def sdk_calls(url: str, calls: int, concurrency: int) -> float:
    """The floor: the same request with the raw SDK, the reply's tool call read as JSON."""
    import openai

    from caredio.agents.culture_expert import ExpertAnswer

    client = openai.AsyncOpenAI(base_url=url, api_key="not-needed", max_retries=0)
    tool = {"type": "function", "function": {"name": "ExpertAnswer", "description": ExpertAnswer.__doc__ or "",
                                             "parameters": ExpertAnswer.model_json_schema()}}

    async def call() -> Any:
        reply = await client.chat.completions.create(
            model="stub", messages=MESSAGES, max_tokens=96, tools=[tool],  # type: ignore[arg-type,list-item]
            tool_choice={"type": "function", "function": {"name": "ExpertAnswer"}})
        calls_made = reply.choices[0].message.tool_calls or []
        return ExpertAnswer.model_validate(json.loads(calls_made[0].function.arguments))  # type: ignore[union-attr]

    await call()
    try:
        return await _timed(calls, concurrency, call)
    finally:
        await client.close()


async def _timed(calls: int, concurrency: int, make: Any) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await make()

    cpu = time.process_time()
    await asyncio.gather(*(one() for _ in range(calls)))
    return time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per stub answer")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the three clients")
    parser.add_argument("--cache", action="store_true",
                        help="measure the direct path with the response cache (misses, hits) instead")
    args = parser.parse_args()
    proc, url = start_stub(args.latency)
    try:
        names = ("direct", "cache miss", "cache hit") if args.cache else ("direct", "langchain", "sdk")
        ms: dict[str, list[float]] = {name: [] for name in names}
        for repeat in range(args.repeats):
            ms["direct"].append(asyncio.run(caredio_calls(url, args.calls, args.concurrency, False)))
            if args.cache:
                import tempfile

                with tempfile.TemporaryDirectory() as tmp:
                    miss, hit = asyncio.run(cached_calls(url, args.calls, args.concurrency,
                                                         Path(tmp) / f"cache-{repeat}.sqlite"))
                ms["cache miss"].append(miss)
                ms["cache hit"].append(hit)
                continue
            ms["langchain"].append(asyncio.run(caredio_calls(url, args.calls, args.concurrency, True)))
            ms["sdk"].append(asyncio.run(sdk_calls(url, args.calls, args.concurrency)))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if args.cache:
        report(ms, args, "direct", "| client | ms of CPU per call | / cache off |")
        return
    report(ms, args, "sdk", "| client | ms per call | / raw SDK |")


def report(ms: dict[str, list[float]], args: Any, base: str, head: str) -> None:
    per_call = {k: [1000 * v / args.calls for v in vs] for k, vs in ms.items()}
    median = {k: statistics.median(vs) for k, vs in per_call.items()}
    print(f"CPU per structured call, C={args.concurrency}, {args.calls} calls, median of {args.repeats} "
          "interleaved rounds (all rounds in brackets)")
    print(f"{head}\n|---|---|---|")
    for name in ms:
        rounds = ", ".join(f"{v:.2f}" for v in per_call[name])
        print(f"| {name} | {median[name]:.2f} ({rounds}) | {median[name] / median[base]:.2f} |")


if __name__ == "__main__":
    main()
