"""The Ray executor on real parts: a local Ray head with two worker nodes, a real Postgres for
the checkpoints, `caredio run --executor ray` as a subprocess (the driver).

The LLM is the FAKE stub server and the embedder the FAKE hash embedder, shipped to the
workers (the tests are about where samples run and what survives a dead worker). Ray,
Postgres and the caredio processes are real, on loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from caredio.memory.judge import in_judge_part
from caredio.run.executors.coordination import HolderReleased, RunCoordinator
from caredio.run.runner import resume_run
from caredio.rundir.files import read_jsonl
from caredio.rundir.reader import open_run
from testing.actors import InProcessActor
from testing.jobs import CLI_WITH_FAKE_EMBEDDER, HashEmbedder, fake_cli_env, interruptible, wait_for
from testing.services import RAY_ENV, RayCluster, ray_cluster, session_processes
from testing.stub_server import FaultPlan, StubOpenAIServer

pytestmark = pytest.mark.services

ROUNDS = 2
CONFIG = f"""
contrast = ["Japan", "China", "South Korea"]
concurrency = 4
[loop]
max_rounds = {ROUNDS}
min_rounds = {ROUNDS}
r_threshold = 1.0
d_threshold = 1.0
patience = {ROUNDS + 1}
[llm]
backoff = 0.02
[memory]
elicit_missing = false
"""


@pytest.fixture(scope="module")
def cluster() -> Any:
    with ray_cluster(workers=2) as started:
        yield started


def _caredio_ray(tmp_path: Path, stub: StubOpenAIServer, address: str, postgres_url: str,
                 run_id: str, *flags: str) -> subprocess.Popen[str]:
    config = tmp_path / "job.toml"
    config.write_text(CONFIG)
    return subprocess.Popen(
        [sys.executable, "-c", CLI_WITH_FAKE_EMBEDDER, "run", "--executor", "ray",
         "--ray-address", address, "--ray-workers", "2", "--checkpoint-url", postgres_url,
         "--memory", ":memory:", "--base-url", stub.url, "--model", "stub", "--config",
         str(config), "--cultures", "Japan,China", "--topics", "food_drink,greetings_etiquette",
         "--samples-per-topic", "2", "--out", str(tmp_path / "runs"), "--run-id", run_id,
         "--quiet", *flags],
        env=fake_cli_env(**RAY_ENV), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=interruptible)


def _wait(proc: subprocess.Popen[str], ready: Any, what: str, limit: float = 300) -> None:
    wait_for(proc, ready, what, limit)


def _sample_workers(cluster: RayCluster) -> list[int]:
    """Pids of the test cluster's processes running a SampleWorker actor (Ray titles them so)."""
    return [pid for pid, cmdline in session_processes(cluster.session).items()
            if cmdline.startswith(b"ray::SampleWorker")]


def _check_exactly_once(run_dir: Path) -> list[str]:
    planned = [s["sample_id"] for s in read_jsonl(run_dir / "plan.jsonl")]
    ids = [line["metadata"]["sample_id"] for line in read_jsonl(run_dir / "dataset.jsonl")]
    assert len(planned) == 8
    assert sorted(ids) == sorted(planned)  # one line per planned sample: no gap, no duplicate
    versions = [(v["sample_id"], v["round"], v["step"])
                for v in read_jsonl(run_dir / "trajectories.jsonl")]
    assert len(versions) == len(set(versions))
    assert Counter(sample for sample, _, _ in versions) == dict.fromkeys(planned, ROUNDS + 1)
    return planned


def test_a_worker_killed_mid_run_loses_no_sample_and_duplicates_none(
        tmp_path: Path, cluster: RayCluster, postgres_url: str) -> None:
    with StubOpenAIServer(latency=0.15) as stub:
        proc = _caredio_ray(tmp_path, stub, cluster.address, postgres_url, "killed")
        run_dir = tmp_path / "runs" / "killed"
        _wait(proc, lambda: len(read_jsonl(run_dir / "trajectories.jsonl")) >= 2 and
              len(_sample_workers(cluster)) == 2, "versions from both workers")
        victim = _sample_workers(cluster)[0]
        os.kill(victim, signal.SIGKILL)  # a process of the test's own Ray cluster
        out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, (out, err[-3000:])
    assert victim not in _sample_workers(cluster)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["completed"] == 8 and record["failed"] == 0, record.get("failures")
    assert record["status"] == "completed" and record["executor"] == "ray" and record["workers_lost"] >= 1  # it died mid-sample
    _check_exactly_once(run_dir)
    assert not (run_dir / "checkpoints.sqlite").exists()  # checkpoints went to Postgres
    # Each worker's CPU on samples, for the scale figures (docs/scale.md); the survivor worked.
    # None: a worker that did not answer at the end, as the killed one may not while Ray is
    # still restarting it on a busy machine (max() of a float and None raised here).
    cpu = record["worker_cpu_seconds"]
    assert len(cpu) == 2 and max(c or 0.0 for c in cpu) > 0
    assert sum(record["worker_samples"]) == 8  # each sample brought to an end once
    # What the Ray executor wrote reads back through run.json's typed owner (a type that
    # disagreed with the writer broke every later command on a Ray run: select, export, resume).
    assert open_run(run_dir).run["worker_samples"] == record["worker_samples"]
    # The driver was the only writer, and wrote every turn the workers finished: the only
    # calls without a trace line are those the killed worker had in flight (at most the
    # run's request limit, 4).
    assert 0 <= len(stub.requests) - len(read_jsonl(run_dir / "trace.jsonl")) <= 4


def test_a_ray_run_is_resumed_by_the_local_executor_from_postgres(
        tmp_path: Path, cluster: RayCluster, postgres_url: str) -> None:
    with StubOpenAIServer(latency=0.15) as stub:
        proc = _caredio_ray(tmp_path, stub, cluster.address, postgres_url, "handover")
        run_dir = tmp_path / "runs" / "handover"

        def some_done_some_not() -> bool:
            done = len(read_jsonl(run_dir / "dataset.jsonl"))
            return done >= 1 and len(read_jsonl(run_dir / "trajectories.jsonl")) > done * 3

        _wait(proc, some_done_some_not, "a finished sample and others under way")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 130, (out, err[-3000:])
        assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
        done_before = {line["metadata"]["sample_id"]
                       for line in read_jsonl(run_dir / "dataset.jsonl")}
        versions_before = Counter(v["sample_id"] for v in read_jsonl(run_dir / "trajectories.jsonl"))
        turns_before = Counter(t["sample_id"] for t in read_jsonl(run_dir / "trace.jsonl"))
        assert len(done_before) < 8

        record = resume_run(run_dir, lambda kind, data: None, embedder=HashEmbedder(),
                            executor="local", checkpoint_url=postgres_url)
    assert record["status"] == "completed" and record["completed"] == 8
    assert record["executor"] == "local"
    planned = _check_exactly_once(run_dir)
    turns_after = Counter(t["sample_id"] for t in read_jsonl(run_dir / "trace.jsonl"))
    for sample in done_before:  # finished on Ray: not called again
        assert turns_after[sample] == turns_before[sample]
    # A sample under way on Ray went on from its Postgres checkpoint: the versions it had are
    # not redone (each version exactly once, above), and it made new calls only for the rest.
    under_way = [s for s in planned if s not in done_before and versions_before[s] > 0]
    # Not every one of them: a sample may have finished in its checkpoint on Ray with its
    # dataset line not yet delivered when the driver stopped (a race a loaded machine wins
    # now and then); its line is written back with no call (one line each, above).
    assert any(turns_after[sample] > turns_before[sample] for sample in under_way)
    assert not (run_dir / "checkpoints.sqlite").exists()


def test_ray_workers_make_baseline_samples_scored_by_the_held_out_judge(
        tmp_path: Path, cluster: RayCluster, postgres_url: str) -> None:
    """The strategy, its n and the judge reach the workers: each builds the loop's part of
    memory (grounding never on a judge item), the judge and the best-of-n graph itself."""
    with StubOpenAIServer() as stub:
        proc = _caredio_ray(tmp_path, stub, cluster.address, postgres_url, "judged",
                            "--strategy", "best-of-n", "--best-of-n", "2", "--judge-split", "0.3")
        out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, (out, err[-3000:])
    run_dir = tmp_path / "runs" / "judged"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["completed"] == 8
    assert record["executor"] == "ray" and record["strategy"] == "best-of-n"
    assert record["candidates"] == [2] and record["judge"]["split"] == 0.3
    versions = read_jsonl(run_dir / "trajectories.jsonl")
    assert Counter(v["step"] for v in versions) == {"initial": 8, "candidate": 8}
    assert all("judge_objective" in v for v in versions)
    grounding = {i for v in versions for i in v["grounding_ids"]}
    assert grounding and not any(in_judge_part(i, 0.3) for i in grounding)
    for line in read_jsonl(run_dir / "dataset.jsonl"):
        assert line["metadata"]["strategy"] == "best-of-n" and "judge_objective" in line["metadata"]


LIMIT = 3
PAUSE = 2.0  # the injected 429's Retry-After, seconds
FIRST_429 = 30  # the request that gets it: mid-run, when both workers have samples under way


def test_the_request_limit_and_429_pause_hold_across_ray_workers(
        tmp_path: Path, cluster: RayCluster, postgres_url: str) -> None:
    """One request limit and one 429 pause for the whole run, not one per worker.

    The FAKE stub server counts the requests it is answering at any moment, whichever worker
    process sent them. Demand is above the limit all along (2 x LIMIT samples under way, half
    per worker, each asking its 3 contrast answers at once), so a limit kept per worker lets
    up to 2 x LIMIT through, and a pause kept by the worker that got the 429 lets the other
    worker's requests go on through it (with a limiter per worker: 6 in flight, 21-22 requests
    started during the pause, in 2 of 2 runs). The stub answers only after ``latency``, and a
    client gives a permit back only once answered, so the stub never counts more requests
    than permits are out.
    """
    faults = FaultPlan(script=("ok",) * (FIRST_429 - 1) + ("429",), retry_after=PAUSE)
    with StubOpenAIServer(latency=0.25, faults=faults) as stub:
        proc = _caredio_ray(tmp_path, stub, cluster.address, postgres_url, "limited",  # a run
                            "--concurrency", str(LIMIT))  # id of its own: Postgres is shared
        out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, (out, err[-3000:])
    run_dir = tmp_path / "runs" / "limited"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["completed"] == 8 and record["workers_lost"] == 0
    samples = record["worker_samples"]  # each worker's samples
    assert len(samples) == 2 and min(samples) >= 1 and sum(samples) == 8
    _check_exactly_once(run_dir)
    assert stub.max_in_flight == LIMIT  # never more, and the limit was reached
    # The pause: once the 429 was answered, no request of the run was let through until
    # Retry-After had passed, on either worker. Only requests granted a permit already may
    # start meanwhile: at most LIMIT - 1, since the 429's own permit is held until the pause
    # is in force (this counts on the pause reaching the coordinator within one stub latency
    # of the answer, 250 ms: the first requests after the pause started 2.01-2.03 s after
    # the answer in 8 runs measured, so it took ~10-30 ms).
    assert stub.stats["429"] == 1 and record["retries"] == 1
    answered = stub.ended_at[FIRST_429]
    during = [n for n, start in stub.started_at.items() if answered < start < answered + PAUSE]
    assert len(during) <= LIMIT - 1, (during, len(stub.requests))


def test_the_coordinator_takes_back_what_a_dead_workers_attempt_held() -> None:
    """Plain asyncio (no Ray): permits and a drafting turn held by an attempt whose worker
    died go back, and a wait of that attempt still pending gets nothing."""
    import asyncio

    async def scenario() -> None:
        coordinator = RunCoordinator(concurrency=2)
        await coordinator.acquire("a#1")
        await coordinator.acquire("a#1")
        await coordinator.begin_draft("Japan", "food", "a#1")
        waiting = asyncio.ensure_future(coordinator.acquire("b#1"))  # no permit left
        drafting = asyncio.ensure_future(coordinator.begin_draft("Japan", "food", "b#1"))
        pending = asyncio.ensure_future(coordinator.acquire("a#1"))
        await asyncio.sleep(0.01)
        assert not waiting.done() and not drafting.done()
        assert await coordinator.release_holder("a#1") == 2
        await asyncio.wait_for(waiting, 1)
        await asyncio.wait_for(drafting, 1)
        with pytest.raises(HolderReleased):
            await asyncio.wait_for(pending, 1)
        assert coordinator.stats()["permits_held"] == 1  # b's only
        await coordinator.release("b#1")
        assert coordinator.limiter.in_flight == 0

    asyncio.run(scenario())


def test_a_429s_pause_is_in_force_before_its_permit_goes_to_another_worker() -> None:
    """Plain asyncio (no Ray), against the FAKE stub server: two workers' RoleLLMs share one
    request permit through the run's RunCoordinator. Worker a's call gets a 429 while worker
    b's call waits for the permit; b's request must wait out Retry-After too. (It did not when
    a's permit went back before its pause reached the coordinator: b took the permit, passed
    the not-yet-paused gate and was sent at once. Nor would it if the pause, sent first, were
    delivered after the release.)"""
    import asyncio
    import threading

    from caredio.config.settings import LLMSettings
    from caredio.llm.client import RoleLLM
    from caredio.llm.structured import MethodMemory
    from caredio.run.executors.ray_worker import HOLDER, RemoteLimiter

    pause = 0.3
    b_waits = threading.Event()  # set once b's call waits at the coordinator for the permit

    def first_gets_429(body: dict[str, Any]) -> str | None:
        if "worker a" in json.dumps(body["messages"]) and not b_waits.is_set():
            b_waits.wait(30)
            return "429"
        return None

    class Reply(BaseModel):
        text: str

    async def scenario(url: str) -> None:
        delivered: list[tuple[str, tuple[Any, ...]]] = []
        run = RunCoordinator(concurrency=1)
        coordinator = InProcessActor(run, delivered, late=("pause",))
        settings = LLMSettings(timeout=10.0, backoff=0.01, structured_output="json_schema")

        async def call(holder: str) -> None:
            HOLDER.set(holder)
            llm = RoleLLM("culture_expert", settings, RemoteLimiter(coordinator, 60.0),
                          MethodMemory("json_schema"), url, "stub")
            await llm.structured([{"role": "user", "content": f"Hello from worker {holder[0]}"}],
                                 Reply)

        async def until(ready: Any) -> None:
            for _ in range(3000):
                if ready():
                    return
                await asyncio.sleep(0.01)
            pytest.fail("timed out")

        a = asyncio.ensure_future(call("a#1"))
        await until(lambda: run.permits["a#1"] == 1)  # a holds the only permit
        b = asyncio.ensure_future(call("b#1"))
        await until(lambda: ("acquire", ("b#1",)) in delivered)
        await asyncio.sleep(0.01)
        assert not b.done() and run.permits["b#1"] == 0
        b_waits.set()
        await asyncio.wait_for(asyncio.gather(a, b), 30)

    with StubOpenAIServer(faults=FaultPlan(rule=first_gets_429, retry_after=pause)) as stub:
        asyncio.run(scenario(stub.url))
    assert stub.stats["429"] == 1 and len(stub.requests) == 3  # a's 429, b's call, a's retry
    assert "worker b" in json.dumps(stub.requests[1]["messages"])
    # The pause began once the 429 was answered (at the coordinator, after the stub's answer),
    # so b's request, let through by the pause, started at least Retry-After later.
    assert stub.started_at[2] - stub.ended_at[1] >= pause
