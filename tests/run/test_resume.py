"""Resume: a real `caredio run` subprocess killed with SIGKILL mid-refinement, a resume
stopped with SIGINT, and a final resume — against the FAKE stub server (latency keeps the
run busy long enough to be killed in the middle). The subprocesses use the FAKE
HashEmbedder (instant to load); the kill/resume machinery under test is the real one.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from caredio.errors import UserInputError
from caredio.run.runner import resume_run, start_run
from caredio.rundir.files import read_jsonl
from caredio.rundir.recorder import RunRecorder
from testing.jobs import (
    CLI_WITH_FAKE_EMBEDDER,
    fake_cli_env,
    interruptible,
    stub_settings,
    trace_totals,
    wait_for,
)
from testing.stub_server import StubOpenAIServer

pytestmark = pytest.mark.slow

CONFIG = """
contrast = ["Japan", "China", "South Korea"]
concurrency = 2
[loop]
max_rounds = 3
min_rounds = 3
r_threshold = 1.0
d_threshold = 1.0
patience = 4
[llm]
backoff = 0.02
[memory]
elicit_missing = false
"""

def _caredio(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CLI_WITH_FAKE_EMBEDDER, *args], env=fake_cli_env(),
                            preexec_fn=interruptible,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen[str], ready: Any, what: str, limit: float = 240) -> None:
    wait_for(proc, ready, what, limit)


def test_sigkill_mid_refinement_then_sigint_then_resume_finishes_exactly(tmp_path: Path) -> None:
    config = tmp_path / "job.toml"
    config.write_text(CONFIG)
    run_dir = tmp_path / "runs" / "r"
    with StubOpenAIServer(latency=0.08) as stub:
        proc = _caredio("run", "--base-url", stub.url, "--model", "stub", "--config", str(config),
                        "--cultures", "Japan,China,South Korea",
                        "--topics", "food_drink,greetings_etiquette", "--memory", ":memory:",
                        "--out", str(tmp_path / "runs"), "--run-id", "r", "--quiet")

        def mid_refinement() -> bool:
            versions = read_jsonl(run_dir / "trajectories.jsonl")
            return any(v["round"] >= 1 for v in versions)

        _wait_for(proc, mid_refinement, "a refinement round")
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        planned = [s["sample_id"] for s in read_jsonl(run_dir / "plan.jsonl")]
        assert len(planned) == 6
        done_at_kill = {line["metadata"]["sample_id"] for line in read_jsonl(run_dir / "dataset.jsonl")}
        assert len(done_at_kill) < 6
        assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

        # A resume stopped by Ctrl-C: clean stop, "interrupted", the resume command printed.
        # The stub answers the resumed run's first calls, then holds every reply: the SIGINT
        # lands while the run waits on a held call, so it cannot have finished before it.
        trace_lines = len(read_jsonl(run_dir / "trace.jsonl"))
        answered_before = len(stub.requests)
        stub.faults.slow_seconds = 600
        stub.faults.rule = lambda body: "slow" if len(stub.requests) > answered_before + 4 else None
        proc = _caredio("resume", str(run_dir), "--quiet")
        _wait_for(proc, lambda: len(read_jsonl(run_dir / "trace.jsonl")) > trace_lines
                  and stub.stats["slow"] > 0, "the resumed run to make calls, then wait on one")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, (out, err)
        assert f"caredio resume {run_dir}" in out
        assert "Traceback" not in err
        record = json.loads((run_dir / "run.json").read_text())
        assert record["status"] == "interrupted"
        trace_before = Counter(t["sample_id"] for t in read_jsonl(run_dir / "trace.jsonl"))
        done_before = {line["metadata"]["sample_id"]
                       for line in read_jsonl(run_dir / "dataset.jsonl")}

        stub.faults.rule = None  # the endpoint answers again
        proc = _caredio("resume", str(run_dir), "--quiet")
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (out, err)

    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["planned"] == record["completed"] == 6 and record["failed"] == 0
    # three processes made these calls; run.json counts all of them
    assert {k: record[k] for k in ("tokens", "retries")} == trace_totals(run_dir)
    ids = [line["metadata"]["sample_id"] for line in read_jsonl(run_dir / "dataset.jsonl")]
    assert sorted(ids) == sorted(planned)  # one line per planned sample: no gap, no duplicate
    versions = [(v["sample_id"], v["round"], v["step"])
                for v in read_jsonl(run_dir / "trajectories.jsonl")]
    assert len(versions) == len(set(versions))
    assert Counter(sample for sample, _, _ in versions) == dict.fromkeys(planned, 4)  # 0..3
    trace_after = Counter(t["sample_id"] for t in read_jsonl(run_dir / "trace.jsonl"))
    for sample in done_before:  # finished samples were not redone
        assert trace_after[sample] == trace_before[sample]


def test_resume_of_a_finished_run_makes_no_call_and_changes_no_line(tmp_path: Path,
                                                                    fake_embedder: Any) -> None:
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path))
        run_dir, first = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
        dataset = (run_dir / "dataset.jsonl").read_text()
        calls = len(stub.requests)
        record = resume_run(run_dir, lambda kind, data: None, embedder=fake_embedder)
        assert len(stub.requests) == calls
    assert record["status"] == "completed" and record["completed"] == first["completed"] == 2
    assert (run_dir / "dataset.jsonl").read_text() == dataset
    # What the run spent is still counted: the resumed process made no call itself.
    totals = trace_totals(run_dir)
    assert record["tokens"] == first["tokens"] == totals["tokens"]
    assert totals["tokens"]["refiner"]["calls"] > 0


def test_run_into_an_existing_run_directory_is_refused(tmp_path: Path, fake_embedder: Any) -> None:
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path))
        run_dir, _ = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
        before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
        with pytest.raises(UserInputError, match="already holds a run"):
            start_run(settings, lambda kind, data: None, embedder=fake_embedder)
        assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before


def test_a_run_directory_in_use_cannot_be_resumed_twice(tmp_path: Path, fake_embedder: Any) -> None:
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path))
        run_dir, _ = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
        with RunRecorder(run_dir).locked(), pytest.raises(UserInputError, match="another caredio"):
            resume_run(run_dir, lambda kind, data: None, embedder=fake_embedder)


def test_resume_writes_a_checkpointed_version_whose_line_never_reached_the_file(
        tmp_path: Path, fake_embedder: Any) -> None:
    """A Ray worker may checkpoint a step before the driver writes the version line it streamed
    (the driver interrupted, the worker killed): the checkpoint holds the whole line, and the
    sample's continuation writes it, once, with no call made for it."""
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path), rounds=1)
        run_dir, _ = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
        path = run_dir / "trajectories.jsonl"
        lines = path.read_text().splitlines(keepends=True)
        assert len(lines) == 4  # 2 samples x (draft + 1 round)
        path.write_text("".join(lines[:1] + lines[2:]))  # one never delivered
        calls = len(stub.requests)
        resume_run(run_dir, lambda kind, data: None, embedder=fake_embedder)
        assert len(stub.requests) == calls
    restored = path.read_text().splitlines(keepends=True)
    assert len(restored) == 4
    assert json.loads(restored[-1]) == json.loads(lines[1])  # the same line, every field


def test_resume_rewrites_a_judged_baseline_sample_as_it_was_first_written(
        tmp_path: Path, fake_embedder: Any) -> None:
    """FAKE stub server and hash embedder (plumbing only). Best-of-n with a held-out judge: the
    checkpoint's whole version carries the judge's scores, and a finished sample's dataset line
    is rewritten with its strategy and the judge's scores of its best version, so lines a dead
    process never delivered come back exactly as that process would have written them."""
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path), strategy="best-of-n", best_of_n=2,
                                 judge={"split": 0.3})
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
        assert record["status"] == "completed" and record["strategy"] == "best-of-n"
        trajectories, dataset = run_dir / "trajectories.jsonl", run_dir / "dataset.jsonl"
        versions = trajectories.read_text().splitlines(keepends=True)
        samples = dataset.read_text().splitlines(keepends=True)
        assert len(versions) == 4 and len(samples) == 2  # 2 samples x 2 candidates
        assert all("judge_objective" in json.loads(line) for line in versions)
        trajectories.write_text("".join(versions[:-1]))  # neither line ever delivered
        dataset.write_text(samples[0])
        calls = len(stub.requests)
        resume_run(run_dir, lambda kind, data: None, embedder=fake_embedder)
        assert len(stub.requests) == calls

    def keyed(lines: list[str]) -> dict[Any, Any]:
        records = [json.loads(line) for line in lines]
        return {(r["sample_id"], r["round"], r["step"]) if "sample_id" in r
                else r["metadata"]["sample_id"]: r for r in records}

    assert keyed(trajectories.read_text().splitlines()) == keyed(versions)
    assert keyed(dataset.read_text().splitlines()) == keyed(samples)
    restored = json.loads(dataset.read_text().splitlines()[-1])["metadata"]
    assert restored["strategy"] == "best-of-n" and "judge_objective" in restored


def test_the_sqlite_checkpointer_commits_through_a_killed_process_without_an_fsync_per_step(
        tmp_path: Path) -> None:
    """WAL with synchronous=NORMAL: durable when the process dies (the SIGKILL tests above
    resume from it), no fsync per checkpoint. FULL (SQLite's default) would fsync each step."""
    import asyncio

    from caredio.graph.checkpoints import open_checkpointer

    async def pragmas() -> tuple[str, int]:
        async with open_checkpointer(None, tmp_path) as saver:
            def pragma(name: str) -> Any:  # on the saver's connection, in its thread
                return saver.conn.execute(f"PRAGMA {name}").fetchone()[0]

            journal = await saver._in_thread(pragma, "journal_mode")
            synchronous = await saver._in_thread(pragma, "synchronous")
        return journal, synchronous

    assert asyncio.run(pragmas()) == ("wal", 1)  # 1 = NORMAL, 2 = FULL
