"""A prompt engineer's loop, measured: the demo plan with a seed, then the same plan after editing
only ``refiner_response.txt``, both through the response cache, against the first run's calls.

Each run is the real ``caredio run --demo`` in its own process (real graph, real MiniLM scorer,
an ephemeral memory, so both start from the same memory: the packaged starter pack), with
``--seed`` and one ``--cache`` file. ``--endpoint stub`` points it at the FAKE stub server (its
own process; its replies are filler), ``--endpoint embedded`` at the embedded llama.cpp server
(SmolLM2-135M). Requests sent are counted from each run's record: the cache's misses (run.json)
plus the transient retries (trace.jsonl). Reported per run: agent turns, requests sent, cache hits,
tokens spent and saved, run.json's wall time and the process's (model loads included).

    python benchmarks/prompt_iteration.py --endpoint stub --latency 1.0
    python benchmarks/prompt_iteration.py --endpoint embedded      # 5-20 minutes on 2 cores

Timings are printed, never asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the FAKE stub server lives with the test support, not the package

EDIT = ("Before rewriting, pick the one practice of this culture the answer most lacks "
        "and make it the answer's first sentence.\n")


def start_stub(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "testing.stub_server", "--varied-text",
                             "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def run(out: Path, run_id: str, cache: Path, seed: int, endpoint: list[str], prompts: Path | None,
        memory: str) -> dict[str, Any]:
    args = [sys.executable, "-m", "caredio.cli.main", "run", "--demo", "--seed", str(seed),
            "--cache", str(cache), "--memory", memory, "--out", str(out), "--run-id", run_id,
            "--quiet", *endpoint, *(["--prompts", str(prompts)] if prompts else [])]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{run_id}: exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}")
    run_dir = out / run_id
    record = json.loads((run_dir / "run.json").read_text())
    turns = [json.loads(line) for line in (run_dir / "trace.jsonl").read_text().splitlines() if line.strip()]
    cache_use = record["cache"]
    return {
        "run": run_id, "turns": len(turns),
        "turns_cached": sum(1 for t in turns if t.get("cached")),
        "requests_sent": cache_use["misses"] + sum(int(t.get("retries") or 0) for t in turns),
        "cache_hits": cache_use["hits"],
        "tokens_spent": sum(r["input"] + r["output"] for r in record["tokens"].values()),
        "tokens_saved": cache_use["saved_input_tokens"] + cache_use["saved_output_tokens"],
        "run_wall_s": record["wall_seconds"], "process_s": round(seconds, 1),
        "completed": record.get("completed"), "planned": record.get("planned"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--endpoint", choices=("stub", "embedded"), default="stub")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--memory", choices=("ephemeral", "copy", "shared"), default="ephemeral",
                        help="each run on a fresh ephemeral memory; on its own copy of one memory "
                        "directory made before the first run; or both on one directory (the first "
                        "run's accepted samples then change the second's question prompts)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="stub: seconds before each answer (a hosted endpoint takes 1-10)")
    args = parser.parse_args()
    stub = None
    endpoint: list[str] = []
    if args.endpoint == "stub":
        stub, url = start_stub(args.latency)
        endpoint = ["--base-url", url, "--model", "stub"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            prompts = base / "prompts"
            prompts.mkdir()
            from caredio.prompts import packaged_text

            text = packaged_text("refiner_response")
            (prompts / "refiner_response.txt").write_text(text.replace("[user]\n", "[user]\n" + EDIT, 1))
            cache = base / "cache.sqlite"
            memories = [":memory:", ":memory:"]
            if args.memory != "ephemeral":
                made = base / "memory"  # the starter pack, loaded by a run that asks nothing
                subprocess.run([sys.executable, "-m", "caredio.cli.main", "memory", "stats", "--memory",
                                str(made)], check=True, capture_output=True, cwd=ROOT)
                memories = [str(made), str(made)]
                if args.memory == "copy":
                    memories = [str(shutil.copytree(made, base / name)) for name in ("m1", "m2")]
            rows = [run(base / "runs", "first", cache, args.seed, endpoint, None, memories[0]),
                    run(base / "runs", "edited", cache, args.seed, endpoint, prompts, memories[1])]
    finally:
        if stub is not None:
            stub.terminate()
            stub.wait()
    for row in rows:
        print(json.dumps(row))
    first, edited = rows
    print(f"\n{args.endpoint}: the edited rerun sent {edited['requests_sent']} requests against the first "
          f"run's {first['requests_sent']} ({edited['requests_sent'] / max(first['requests_sent'], 1):.0%}); "
          f"{edited['cache_hits']} answered by the cache; run wall {edited['run_wall_s']} s against "
          f"{first['run_wall_s']} s")
    print("| run | turns | from cache | requests sent | tokens spent | tokens saved | run wall s | process s |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['run']} | {row['turns']} | {row['turns_cached']} | {row['requests_sent']} | "
              f"{row['tokens_spent']} | {row['tokens_saved']} | {row['run_wall_s']} | {row['process_s']} |")


if __name__ == "__main__":
    main()
