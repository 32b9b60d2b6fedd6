"""Samples per minute and CPU per call against the number of Ray workers (docs/scale.md).

The FAKE stub server (its own process, varied text, a fixed latency L) answers every call; a
real Postgres (Debian's package, a throwaway cluster as in the tests) holds the checkpoints; Ray
runs on this machine (``ray.init`` with as many CPUs as workers). Each worker loads the real
MiniLM embedder and its own ephemeral copy of the starter pack, as a real run's workers do.
For each worker count W, one run of S samples at C requests in flight:

* samples per minute over the working part of the run (first sample started to last sample
  done, as the driver saw them: worker start-up, model loads, is excluded and reported apart);
* CPU per call: the workers' CPU on samples (run.json ``worker_cpu_seconds``) plus the
  driver's (this process), divided by the calls;
* wall/ideal (ideal = calls x L / C) and the machine's load average.

    python benchmarks/scale.py                      # W = 1 and 2, C=64, S=128, L=200 ms
    python benchmarks/scale.py --workers 1,2 --samples 64

The machine is shared: compare CPU per call, and rates measured in one run. Printed, never
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the stub server and Postgres helper live with the tests
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from orchestration import CULTURES, TOPICS, _load, start_stub  # noqa: E402


def ray_run(url: str, postgres: str, workers: int, samples: int, rounds: int,
            concurrency: int, latency: float, out: str) -> dict[str, Any]:
    from caredio.run.execution import execute
    from caredio.run.job import prepare
    from caredio.rundir.files import read_jsonl
    from caredio.rundir.recorder import RunRecorder
    from testing.jobs import stub_settings

    per_topic = samples // (len(CULTURES) * len(TOPICS))
    run_id = f"w{workers}-c{concurrency}-s{samples}-{time.monotonic_ns()}"
    settings = stub_settings(url, out, rounds=rounds, concurrency=concurrency, run_id=run_id,
                             cultures=CULTURES, topics=TOPICS, samples_per_topic=per_topic,
                             threads={"embeddings": 1, "llm": 1}, executor="ray",
                             ray_workers=workers, checkpoint_url=postgres)
    job = prepare(settings)
    run_dir = Path(out) / run_id
    recorder = RunRecorder.create(run_dir, settings.snapshot(), job.templates)
    load = _load()
    seen: dict[str, list[float]] = {}

    def on_event(kind: str, data: dict[str, Any]) -> None:
        seen.setdefault(kind, []).append(time.time())

    wall0, cpu0 = time.time(), time.process_time()
    record = asyncio.run(execute(job, run_dir, recorder, on_event))
    wall, driver_cpu = time.time() - wall0, time.process_time() - cpu0
    job.memory.close()
    trace = read_jsonl(run_dir / "trace.jsonl")
    calls = len(trace) + sum(t["retries"] for t in trace)
    # The working part, as the driver saw it: first sample started to last sample done.
    first_call, last_done = min(seen["sample_started"]), max(seen["sample_done"])
    working = last_done - first_call
    worker_cpu = sum(c or 0.0 for c in record["worker_cpu_seconds"])
    ideal = calls * latency / concurrency
    return {
        "workers": workers, "concurrency": concurrency, "samples": samples, "rounds": rounds,
        "status": record["status"], "completed": record["completed"], "calls": calls,
        "wall_s": round(wall, 1), "start_up_s": round(first_call - wall0, 1),
        "working_s": round(working, 1), "samples_per_min": round(60 * samples / working, 1),
        "ideal_s": round(ideal, 2), "working_over_ideal": round(working / ideal, 2),
        "worker_cpu_s": record["worker_cpu_seconds"], "driver_cpu_s": round(driver_cpu, 1),
        "cpu_ms_per_call": round(1000 * (worker_cpu + driver_cpu) / calls, 1),
        "worker_cpu_ms_per_call": round(1000 * worker_cpu / calls, 1),
        "load_before": load, "load_after": _load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    from testing.services import postgres_server

    stub, url = start_stub(args.latency)
    try:
        with postgres_server() as postgres, tempfile.TemporaryDirectory() as out:
            for workers in (int(w) for w in args.workers.split(",")):
                row = ray_run(url, postgres, workers, args.samples, args.rounds,
                              args.concurrency, args.latency, out)
                print(json.dumps(row), flush=True)
    finally:
        stub.terminate()
        stub.wait()


if __name__ == "__main__":
    main()
