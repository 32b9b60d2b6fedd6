"""Throughput of CAReDiO's orchestration against a floor client, and its overhead on the embedded model.

Part 1 (default): the FAKE stub server (its own process, so its CPU is not counted) answers
every call after a fixed latency L with schema-valid text that never repeats (``--varied-text``:
random sentences over the starter pack's ~2,000 words, so the embedding cache cannot hit as it
would with the stub's 16-word filler). At each configuration C/S (requests in flight / samples),
two clients run side by side in this one process, interleaved:

* CAReDiO: a real run (agents, scorer with the real MiniLM embedder, checkpoints, records) of S
  samples for exactly R rounds at concurrency C;
* the floor: plain ``openai.AsyncOpenAI`` under a semaphore of C, replaying the very requests
  CAReDiO sent (the same rendered prompts, the same structured-output request, one sample's
  calls in the same order, its contrast answers concurrently), each reply validated by the same
  pydantic model. It is the least any client must spend on that call pattern.

Reported per run: calls, wall time, the ideal (calls x L / C), wall/ideal, this process's CPU
time per call, and for CAReDiO the embedding model's share of it (CPU time of the threads inside
``embed``) and the rest ("orchestration"). The machine's load average is printed with each run:
the machine is shared, so compare ratios and CPU per call measured in one run, not wall times.

Part 2 (``--embedded``): SmolLM2-135M through the whole stack (RoleLLM -> HTTP -> embedded
llama.cpp server) against llama-cpp-python called directly on the same prompt.

    python benchmarks/orchestration.py                           # C=16/S=64 and C=64/S=128, L=200 ms
    python benchmarks/orchestration.py --configs 16x64 --repeats 3
    python benchmarks/orchestration.py --samples-per-slot 2,4       # samples_in_flight = 2C, 4C
    python benchmarks/orchestration.py --embed-runtimes fake,onnx   # orchestration alone, and with MiniLM
    python benchmarks/orchestration.py --embedded-only           # part 2 (needs the 'local' extra)
    python benchmarks/orchestration.py --embed-runtimes fake --thread-cpu   # CPU per call by thread

Timings are printed, never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the FAKE stub server lives with the tests, not in the package
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

TOPICS = ("food_drink", "dining_etiquette", "greetings_etiquette", "gift_giving")
CULTURES = ("Japan", "China")


def start_stub(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "testing.stub_server", "--varied-text",
                             "--latency", str(latency)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


class MeteredEmbedder:
    """The real embedder, with the CPU time spent inside ``embed`` counted (all callers' threads).

    The model runs with one intra-op thread here (``threads.embeddings = 1``), so the calling
    thread's CPU time is the model's; with ``--embed-threads 2`` the second thread's CPU lands in
    "the rest" (the CPU per call counts every thread).
    """

    def __init__(self, inner: Any, threads: int = 1) -> None:
        self.inner = inner
        self.threads = threads
        self.backend = inner.backend
        self.dim = inner.dim
        self.cpu = 0.0
        self.calls = 0
        self.texts = 0
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        started = time.thread_time()
        try:
            return self.inner.embed(texts)
        finally:
            spent = time.thread_time() - started
            with self._lock:
                self.cpu += spent
                self.calls += 1
                self.texts += len(texts)

    def warm(self, texts: list[str]) -> None:
        warm = getattr(self.inner, "warm", None)
        if warm is not None:
            warm(texts)

    def reset(self) -> None:
        self.cpu, self.calls, self.texts = 0.0, 0, 0


class FakeModel:
    """``--embed-runtimes fake``: the FAKE hashing embedder of the tests instead of MiniLM, so
    CAReDiO's CPU per call is its orchestration alone, without a model competing for the cores."""

    runtime = "fake"
    batch_size = 0

    def __init__(self) -> None:
        from testing.jobs import HashEmbedder

        self._model = HashEmbedder()
        self.backend, self.dim = self._model.backend, self._model.dim
        self._cache: dict[str, Any] = {}  # cleared per run like the real embedder's

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.embed(texts))


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _threads(enabled: bool) -> Any:
    """Per-thread CPU over the measured block (``--thread-cpu``), or nothing."""
    from thread_cpu import ThreadCPU

    return ThreadCPU() if enabled else contextlib.nullcontext()


def _per_call(threads: Any, calls: int) -> dict[str, Any]:
    seconds = getattr(threads, "seconds", None)
    if seconds is None:
        return {}
    return {"thread_cpu_ms_per_call": {name: round(1000 * cpu / calls, 2)
                                       for name, cpu in seconds.items() if cpu > 0}}


def caredio_run(url: str, samples: int, rounds: int, concurrency: int, latency: float,
                embedder: MeteredEmbedder, out: str, embed_batch: int | None = None,
                per_slot: int | None = None, thread_cpu: bool = False,
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from caredio.run.agent_factory import samples_in_flight
    from caredio.run.execution import execute
    from caredio.run.job import prepare
    from caredio.rundir.files import read_jsonl
    from caredio.rundir.recorder import RunRecorder
    from testing.jobs import stub_settings

    per_topic, rest = divmod(samples, len(CULTURES) * len(TOPICS))
    if rest or not per_topic:
        raise SystemExit(f"samples must be a multiple of {len(CULTURES) * len(TOPICS)}")
    run_id = f"c{concurrency}-s{samples}-{time.monotonic_ns()}"
    settings = stub_settings(url, out, rounds=rounds, concurrency=concurrency, run_id=run_id,
                             cultures=CULTURES, topics=TOPICS, samples_per_topic=per_topic,
                             threads={"embeddings": embedder.threads, "llm": 1},
                             samples_in_flight=per_slot * concurrency if per_slot else None)
    if embed_batch is not None:
        embedder.inner.batch_size = embed_batch
    # Every run pays for its own texts: runs at different batch sizes share one embedder
    embedder.inner._cache.clear()
    job = prepare(settings, embedder=embedder)  # type: ignore[arg-type]
    run_dir = Path(out) / run_id
    recorder = RunRecorder.create(run_dir, settings.snapshot(), job.templates)
    load = _load()
    embedder.reset()
    runs0 = getattr(getattr(embedder.inner, "_batcher", None), "runs", 0)
    with _threads(thread_cpu) as threads:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        record = asyncio.run(execute(job, run_dir, recorder, lambda kind, data: None))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    job.memory.close()
    trace = read_jsonl(run_dir / "trace.jsonl")
    calls = len(trace) + sum(t["retries"] for t in trace)
    ideal = calls * latency / concurrency
    report = {
        "client": "caredio", "embed_batch": embedder.inner.batch_size,
        "embed_runtime": getattr(embedder.inner, "runtime", ""), "embed_threads": embedder.threads,
        "concurrency": concurrency, "samples": samples, "rounds": rounds,
        "samples_in_flight": samples_in_flight(settings),
        "status": record["status"], "completed": record["completed"], "calls": calls,
        "wall_s": round(wall, 2), "ideal_s": round(ideal, 2), "ratio": round(wall / ideal, 3),
        "cpu_ms_per_call": round(1000 * cpu / calls, 2),
        "embed_cpu_ms_per_call": round(1000 * embedder.cpu / calls, 2),
        "orchestration_cpu_ms_per_call": round(1000 * (cpu - embedder.cpu) / calls, 2),
        "embed_calls": embedder.calls, "embedded_texts": embedder.texts,
        "model_runs": getattr(getattr(embedder.inner, "_batcher", None), "runs", 0) - runs0,
        "methods": sorted({t.get("method", "") for t in trace}), "load_before": load,
        "load_after": _load(), **_per_call(threads, calls),
    }
    return report, trace


def _schemas() -> dict[str, Any]:
    from caredio.agents.contrast_critic import ContrastAnswer, Critique
    from caredio.agents.culture_expert import ElicitedKnowledge, ExpertAnswer, ExpertQuestion
    from caredio.agents.refiner import RefinedQuestion, RefinedResponse

    return {"culture_expert_question": ExpertQuestion, "culture_expert_answer": ExpertAnswer,
            "culture_expert_knowledge": ElicitedKnowledge, "contrast_critic_contrast": ContrastAnswer,
            "contrast_critic_critique": Critique, "refiner_question": RefinedQuestion,
            "refiner_response": RefinedResponse}


def _request(method: str, schema: Any) -> dict[str, Any]:
    """The same structured-output request CAReDiO's method sends."""
    name = schema.__name__
    if method == "json_schema":
        return {"response_format": {"type": "json_schema", "json_schema": {
            "name": name, "schema": schema.model_json_schema()}}}
    if method == "function_calling":
        return {"tools": [{"type": "function", "function": {
                    "name": name, "description": schema.__doc__ or "",
                    "parameters": schema.model_json_schema()}}],
                "tool_choice": {"type": "function", "function": {"name": name}}}
    if method == "json_mode":
        return {"response_format": {"type": "json_object"}}
    return {}


def _steps(turns: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """One sample's turns in order; its contrast answers of one round run together."""
    steps: list[list[dict[str, Any]]] = []
    for turn in turns:
        parallel = turn["template"] == "contrast_critic_contrast"
        if (parallel and steps and steps[-1][0]["template"] == turn["template"]
                and steps[-1][0]["round"] == turn["round"]):
            steps[-1].append(turn)
        else:
            steps.append([turn])
    return steps


def floor_run(url: str, trace: list[dict[str, Any]], concurrency: int, latency: float,
              temperature: float, max_tokens: int, thread_cpu: bool = False) -> dict[str, Any]:
    """Plain AsyncOpenAI replaying CAReDiO's requests: the least a client can spend on them."""
    import openai

    schemas = _schemas()
    by_sample: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for turn in trace:
        by_sample[turn["sample_id"]].append(turn)
    calls = len(trace)

    async def run() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="not-needed", max_retries=0)
        slots = asyncio.Semaphore(concurrency)

        async def call(turn: dict[str, Any]) -> None:
            schema = schemas[turn["template"]]
            async with slots:
                reply = await client.chat.completions.create(
                    model="stub", messages=turn["messages"], temperature=temperature,
                    max_tokens=max_tokens, **_request(turn["method"], schema))
            message = reply.choices[0].message
            raw = message.tool_calls[0].function.arguments if message.tool_calls else message.content
            schema.model_validate_json(raw or "")

        async def sample(turns: list[dict[str, Any]]) -> None:
            for step in _steps(turns):
                await asyncio.gather(*(call(turn) for turn in step))

        await asyncio.gather(*(sample(turns) for turns in by_sample.values()))
        await client.close()

    load = _load()
    with _threads(thread_cpu) as threads:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        asyncio.run(run())
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    ideal = calls * latency / concurrency
    return {"client": "floor", "concurrency": concurrency, "samples": len(by_sample),
            "calls": calls, "wall_s": round(wall, 2), "ideal_s": round(ideal, 2),
            "ratio": round(wall / ideal, 3), "cpu_ms_per_call": round(1000 * cpu / calls, 2),
            "load_before": load, "load_after": _load(), **_per_call(threads, calls)}


def side_by_side(configs: list[tuple[int, int]], rounds: int, latency: float, repeats: int,
                 embed_batches: list[int | None] | None = None,
                 embed_runtimes: list[str] | None = None,
                 per_slot: list[int | None] | None = None,
                 embed_threads: list[int] | None = None,
                 thread_cpu: bool = False) -> list[dict[str, Any]]:
    from caredio.config.settings import ThreadSettings
    from caredio.memory.embeddings import SentenceTransformerEmbedder
    from caredio.threads import configure_threads

    # One model per runtime and thread count, each run interleaved with the others (runtime
    # "auto", one thread by default). ONNX Runtime takes its thread count when the model loads.
    embedders = []
    for runtime, threads in itertools.product(embed_runtimes or ["auto"], embed_threads or [1]):
        configure_threads(ThreadSettings(embeddings=threads, llm=1))
        model = FakeModel() if runtime == "fake" else SentenceTransformerEmbedder(runtime=runtime)
        embedders.append(MeteredEmbedder(model, threads))
    stub, url = start_stub(latency)
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as out:
            for repeat in range(repeats):
                for (concurrency, samples), batch, embedder, slot in itertools.product(
                        configs, embed_batches or [None], embedders, per_slot or [None]):
                    ours, trace = caredio_run(url, samples, rounds, concurrency, latency,
                                              embedder, out, batch, slot, thread_cpu)
                    floor = floor_run(url, trace, concurrency, latency, temperature=0.7,
                                      max_tokens=400, thread_cpu=thread_cpu)
                    for row in (ours, floor):
                        row["repeat"] = repeat
                        print(json.dumps(row), flush=True)
                        rows.append(row)
    finally:
        stub.terminate()
        stub.wait()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per run pair, CAReDiO against the floor."""
    lines = ["| C | S | samples in flight | embedder (runtime / batch / threads) | calls | CAReDiO wall/ideal | "
             "floor wall/ideal | CAReDiO CPU/call | … embedding | … rest | floor CPU/call | rest / floor "
             "| load (1/5/15 min) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ours = [r for r in rows if r["client"] == "caredio"]
    floors = [r for r in rows if r["client"] == "floor"]
    for a, b in zip(ours, floors, strict=True):
        lines.append(
            f"| {a['concurrency']} | {a['samples']} | {a['samples_in_flight']} | "
            f"{a['embed_runtime']} / {a['embed_batch']} / {a['embed_threads']} | {a['calls']} | "
            f"{a['ratio']:.2f} | "
            f"{b['ratio']:.2f} | {a['cpu_ms_per_call']:.1f} ms | {a['embed_cpu_ms_per_call']:.1f} ms | "
            f"{a['orchestration_cpu_ms_per_call']:.1f} ms | {b['cpu_ms_per_call']:.1f} ms | "
            f"{a['orchestration_cpu_ms_per_call'] / b['cpu_ms_per_call']:.2f} | {a['load_before']} |")
    return "\n".join(lines)


def thread_table(rows: list[dict[str, Any]]) -> str:
    """Markdown (``--thread-cpu``): CPU per call by thread, each run's groups largest first."""
    lines = ["| client | C | S | embedder | CPU/call | by thread (ms per call) |", "|---|---|---|---|---|---|"]
    for row in rows:
        groups = ", ".join(f"{name} {ms:.2f}" for name, ms in row["thread_cpu_ms_per_call"].items())
        lines.append(f"| {row['client']} | {row['concurrency']} | {row['samples']} | "
                     f"{row.get('embed_runtime', '')} | {row['cpu_ms_per_call']:.2f} ms | {groups} |")
    return "\n".join(lines)


def _configs(text: str) -> list[tuple[int, int]]:
    pairs = []
    for part in text.split(","):
        concurrency, _, samples = part.partition("x")
        pairs.append((int(concurrency), int(samples)))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--configs", type=_configs, default=[(16, 64), (64, 128)],
                        help="CxS pairs: requests in flight x samples [16x64,64x128]")
    parser.add_argument("--embed-batches", type=lambda t: [int(x) for x in t.split(",")], default=None,
                        help="run CAReDiO once per embedding-model batch size, e.g. 128,8 "
                        "[the embedder's default]")
    parser.add_argument("--embed-runtimes", type=lambda t: t.split(","), default=None,
                        help="run CAReDiO once per MiniLM runtime, e.g. torch,onnx [auto]; 'fake' = "
                        "the tests' hashing embedder (orchestration alone)")
    parser.add_argument("--embed-threads", type=lambda t: [int(x) for x in t.split(",")], default=None,
                        help="run CAReDiO once per embedding-model thread count, e.g. 1,2 [1]; the "
                        "embedding column counts the calling thread only, the CPU per call all of them")
    parser.add_argument("--samples-per-slot", type=lambda t: [int(x) for x in t.split(",")], default=None,
                        help="run CAReDiO once per samples_in_flight = K x C, e.g. 2,4 [the default]")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per stub answer")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds of all configs")
    parser.add_argument("--embedded", action="store_true", help="also part 2 (slow)")
    parser.add_argument("--embedded-only", action="store_true")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--thread-cpu", action="store_true",
                        help="also CPU per call by thread (Linux /proc; the event loop is MainThread)")
    args = parser.parse_args()
    if args.thread_cpu and not Path("/proc/self/task").is_dir():
        parser.error("--thread-cpu reads /proc/self/task, which this system does not have")
    if not args.embedded_only:
        rows = side_by_side(args.configs, args.rounds, args.latency, args.repeats, args.embed_batches,
                            args.embed_runtimes, args.samples_per_slot, args.embed_threads,
                            args.thread_cpu)
        print(table(rows), flush=True)
        if args.thread_cpu:
            print(thread_table(rows), flush=True)
    if args.embedded or args.embedded_only:
        from embedded_overhead import embedded

        print(json.dumps({"embedded": embedded(args.max_tokens, 3)}), flush=True)


if __name__ == "__main__":
    main()
