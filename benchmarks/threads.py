"""Thread counts on this machine: the embedded llama.cpp server and the embedding model.

For each thread count (``--threads 1 2`` by default) it measures, alternating the settings
round by round so that a change in the machine's load hits every setting alike:

* ``llm``: the embedded llama.cpp server (SmolLM2-135M) started with ``n_threads = n``
  answers the same chat request (temperature 0, ``--max-tokens`` tokens) ``--calls`` times;
  reported: generated tokens per second of wall time, and the server's CPU seconds per token
  (from /proc, so other processes' load does not count).
* ``embeddings``: a fresh process with ``threads.embeddings = n`` embeds the starter pack's
  texts with the packaged MiniLM (``--embed-runtime``: ONNX Runtime or torch, default auto);
  reported: sentences per second of wall time and CPU milliseconds per sentence.

    python benchmarks/threads.py                      # both, 3 rounds
    python benchmarks/threads.py --only embeddings --rounds 5

Timings are printed, never asserted anywhere. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = [{"role": "user", "content": "Describe how people greet each other at a family "
                                      "dinner, in five sentences."}]

EMBED_CHILD = """
import json, os, sys, time
threads = int(sys.argv[1])
import torch
from caredio.config.settings import ThreadSettings
from caredio.threads import configure_threads
# The setting, not torch.set_num_threads: the embedder applies the configured count when it
# loads (a bare set_num_threads was overridden by the default, so both rounds ran 1 thread).
configure_threads(ThreadSettings(embeddings=threads))
from caredio.memory.embeddings import SentenceTransformerEmbedder
from caredio.memory.ingest import starter_pack
texts = [item.text for item in starter_pack()]
model = SentenceTransformerEmbedder(runtime=sys.argv[2])
assert torch.get_num_threads() == threads, (torch.get_num_threads(), threads)
model.embed(texts[:32])  # load and warm up
model._cache.clear()
wall0, cpu0 = time.perf_counter(), time.process_time()
model.embed(texts)
wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
print(json.dumps({"n": len(texts), "wall": wall, "cpu": cpu}))
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def llm_round(threads: int, calls: int, max_tokens: int) -> dict[str, float]:
    import httpx

    from caredio.llm.embedded import LocalLLMServer

    with LocalLLMServer(threads=threads) as server:
        assert server.process is not None
        body = {"model": server.model, "messages": PROMPT, "temperature": 0.0,
                "max_tokens": max_tokens}
        url = server.base_url + "/chat/completions"
        httpx.post(url, json=body, timeout=600).raise_for_status()  # warm-up
        tokens, wall, cpu = 0, 0.0, 0.0
        for _ in range(calls):
            cpu0, wall0 = _cpu_seconds(server.process.pid), time.perf_counter()
            reply = httpx.post(url, json=body, timeout=600).json()
            wall += time.perf_counter() - wall0
            cpu += _cpu_seconds(server.process.pid) - cpu0
            tokens += reply["usage"]["completion_tokens"]
    return {"tokens_per_s": tokens / wall, "cpu_ms_per_token": 1000 * cpu / tokens}


def embeddings_round(threads: int, runtime: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", EMBED_CHILD, str(threads), runtime], check=True,
                         capture_output=True, text=True).stdout
    found = json.loads(out.strip().splitlines()[-1])
    return {"sentences_per_s": found["n"] / found["wall"],
            "cpu_ms_per_sentence": 1000 * found["cpu"] / found["n"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3, help="chat calls per llm round")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--only", choices=("llm", "embeddings"))
    parser.add_argument("--embed-runtime", default="auto", choices=("auto", "onnx", "torch"),
                        help="what runs MiniLM in the embeddings rounds [auto]")
    args = parser.parse_args()
    parts = [p for p in ("llm", "embeddings") if args.only in (None, p)]
    results: dict[str, dict[int, list[dict[str, float]]]] = {p: {} for p in parts}
    print(f"cores: {len(os.sched_getaffinity(0))}, load average at start: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for round_ in range(args.rounds):
        for part in parts:
            for threads in args.threads:
                row = (llm_round(threads, args.calls, args.max_tokens) if part == "llm"
                       else embeddings_round(threads, args.embed_runtime))
                results[part].setdefault(threads, []).append(row)
                print(f"round {round_ + 1} {part} threads={threads}: "
                      + "  ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for part, by_threads in results.items():
        print(f"\n{part} (median of {args.rounds} rounds)")
        medians: dict[int, dict[str, float]] = {
            n: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            for n, rows in by_threads.items()}
        base = args.threads[0]
        for n, row in medians.items():
            ratio = {k: v / medians[base][k] for k, v in row.items()}
            print(f"  threads={n}: " + "  ".join(
                f"{k} {v:.2f} (x{ratio[k]:.2f} of threads={base})" for k, v in row.items()))


if __name__ == "__main__":
    main()
