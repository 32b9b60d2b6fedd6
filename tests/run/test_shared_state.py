"""Shared state for runs across processes: checkpoints in a real Postgres, memory on a real
Chroma server, and a clear exit 2 at start-up when either is not there.

The LLM is the FAKE stub server and the embedder the FAKE hash embedder (the test is about
where state lives); Postgres and Chroma are the real servers, on loopback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from caredio.run.runner import resume_run, start_run
from caredio.rundir.files import read_jsonl
from testing.jobs import CLI_WITH_FAKE_EMBEDDER, fake_cli_env, stub_settings
from testing.services import free_port
from testing.stub_server import StubOpenAIServer


def _threads(url: str) -> set[tuple[str, str]]:
    with psycopg.connect(url) as db:
        return {(t, ns) for t, ns in db.execute(
            "select distinct thread_id, checkpoint_ns from checkpoints")}


def test_a_run_keeps_its_checkpoints_in_postgres_and_its_memory_on_a_chroma_server(
        tmp_path: Path, postgres_url: str, chroma_server: str, fake_embedder: Any) -> None:
    # With a password in the URL (the test cluster trusts loopback, so any password logs in):
    # it is never written to the run directory, and resume is given the URL again.
    url = postgres_url.replace("postgres@", "postgres:pg-PLANTED-123@")
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path), run_id="pg", checkpoint_url=url)
        settings = settings.model_copy(update={"memory": settings.memory.model_copy(
            update={"path": None, "url": chroma_server})})
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
        assert record["status"] == "completed" and record["completed"] == 2
        calls = len(stub.requests)
        # Resume reads the finished samples' state from Postgres: nothing is called again.
        resumed = resume_run(run_dir, lambda kind, data: None, embedder=fake_embedder,
                             checkpoint_url=url)
        assert len(stub.requests) == calls
    assert resumed["status"] == "completed" and resumed["completed"] == 2
    assert not (run_dir / "checkpoints.sqlite").exists()
    for path in run_dir.rglob("*"):
        assert b"pg-PLANTED-123" not in path.read_bytes() if path.is_file() else True, path
    assert "REDACTED@127.0.0.1" in (run_dir / "config.json").read_text()
    # Thread ids carry the run id: one database serves every run.
    assert {("pg/japan-food_drink-000", ""), ("pg/china-food_drink-000", "")} <= _threads(postgres_url)
    # The accepted samples went to the server's memory.
    import chromadb

    port = int(chroma_server.rsplit(":", 1)[1])
    samples = chromadb.HttpClient(host="127.0.0.1", port=port).get_collection("samples")
    assert sorted(m["sample_id"] for m in samples.get(include=["metadatas"])["metadatas"]) == [
        "china-food_drink-000", "japan-food_drink-000"]
    assert len(read_jsonl(run_dir / "selected.jsonl")) == 2


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI_WITH_FAKE_EMBEDDER, *args],
                          env=fake_cli_env(), capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # over 5 s: out of the fast lane
def test_unreachable_postgres_or_chroma_stops_at_start_up_with_exit_2(tmp_path: Path) -> None:
    dead = free_port()
    with StubOpenAIServer() as stub:
        common = ("run", "--base-url", stub.url, "--model", "stub", "--cultures", "Japan,China",
                  "--topics", "food_drink", "--out", str(tmp_path / "runs"), "--quiet")
        postgres = _cli(*common, "--memory", ":memory:", "--run-id", "a", "--checkpoint-url",
                        f"postgresql://bob:pg-secret-77@127.0.0.1:{dead}/caredio")
        chroma = _cli(*common, "--run-id", "b", "--memory-url", f"http://127.0.0.1:{dead}")
    for proc, names in ((postgres, ("Postgres", f"127.0.0.1:{dead}", "--checkpoint-url")),
                        (chroma, ("Chroma server", f"127.0.0.1:{dead}", "--memory-url"))):
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and all(name in lines[0] for name in names), proc.stderr
    assert "pg-secret-77" not in postgres.stderr + postgres.stdout
    assert not (tmp_path / "runs").exists()  # nothing half-made
