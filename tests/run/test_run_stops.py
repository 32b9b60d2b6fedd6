"""A run stopped part-way by something outside it: the Chroma server of ``--memory-url`` killed
with SIGKILL mid-run, and the file system of ``--out`` filling up (a real tmpfs: a real ENOSPC
from the kernel, not an injected one).

Real `caredio` processes, a real Chroma server, a real file system; the LLM is the FAKE stub
server and the embedder the FAKE HashEmbedder (CLI_WITH_FAKE_EMBEDDER): the tests are about how
a run stops and resumes, not about what it makes. Each checks the one line on standard error
(the service or file, what is kept, the resume command), exit code 1, run.json's status, that
no warning or traceback leaks out, that no line is torn, and that the very resume command the
line gives finishes every sample with no line written twice.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from caredio.run.execution import stopped_by
from caredio.rundir.files import read_jsonl
from caredio.rundir.formats import CHECKPOINTS, DATASET, TRACE, TRAJECTORIES
from testing.jobs import CLI_WITH_FAKE_EMBEDDER, fake_cli_env, stub_settings, wait_for
from testing.services import ChromaServer, small_disk
from testing.stub_server import StubOpenAIServer

pytestmark = pytest.mark.services

PLANNED = 27  # 3 cultures x 3 topics x 3 samples, as in the issue
CONFIG = """
contrast = ["Japan", "China", "South Korea"]
concurrency = 2
samples_per_topic = 3
[loop]
max_rounds = 2
min_rounds = 2
r_threshold = 1.0
d_threshold = 1.0
patience = 3
[llm]
backoff = 0.02
[memory]
elicit_missing = false
"""


def _run(tmp_path: Path, stub_url: str, out: Path, *memory: str) -> subprocess.Popen[str]:
    """`caredio run` of the 27-sample job; its output goes to files (no pipe to fill up)."""
    config = tmp_path / "job.toml"
    config.write_text(CONFIG)
    with (tmp_path / "stdout").open("w") as stdout, (tmp_path / "stderr").open("w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-c", CLI_WITH_FAKE_EMBEDDER, "run", "--base-url", stub_url,
             "--model", "stub", "--config", str(config), "--cultures", "Japan,China,South Korea",
             "--topics", "food_drink,greetings_etiquette,gift_giving", *memory, "--out",
             str(out), "--run-id", "r", "--quiet"],
            env=fake_cli_env(), stdout=stdout, stderr=stderr, text=True)


def _stop_line(tmp_path: Path, proc: subprocess.Popen[str], run_dir: Path) -> str:
    """The run's one line on standard error, checked for what every stop must say."""
    assert proc.wait(timeout=240) == 1
    stderr = (tmp_path / "stderr").read_text()
    assert "Warning" not in stderr and "Traceback" not in stderr, stderr  # no RuntimeWarning
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    [line] = lines
    kept = re.search(rf"the run stopped with (\d+) of {PLANNED} samples finished, on disk in "
                     rf"{re.escape(str(run_dir))};", line)
    assert kept, line
    assert int(kept.group(1)) == len(read_jsonl(run_dir / DATASET)) < PLANNED  # mid-run
    assert line.endswith(f"`caredio resume {run_dir}`"), line
    return line


def _status(run_dir: Path, line: str) -> dict[str, object]:
    """run.json says how the run ended, with the line's reason as its error."""
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "interrupted", record
    assert line.startswith(f"error: {record['error']}; the run stopped"), (line, record["error"])
    assert not (run_dir / ".reserve").exists()  # the space held for run.json was given back
    return record


def _whole_lines(run_dir: Path) -> None:
    for name in (TRACE, TRAJECTORIES, DATASET):
        path = run_dir / name
        raw = path.read_bytes() if path.exists() else b""
        assert not raw or raw.endswith(b"\n"), name  # no torn last line
        for text in raw.splitlines():
            json.loads(text)  # no torn line anywhere


def _resume_as_told(tmp_path: Path, line: str, run_dir: Path) -> None:
    """Run the resume command the line gives, as given; every sample ends done, once."""
    command = re.search(r"`(caredio resume [^`]+)`$", line)
    assert command, line
    args = command.group(1).split()[1:]
    assert args == ["resume", str(run_dir)]
    proc = subprocess.run([sys.executable, "-c", CLI_WITH_FAKE_EMBEDDER, *args, "--quiet"],
                          env=fake_cli_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Warning" not in proc.stderr, proc.stderr
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["completed"] == PLANNED, record
    ids = [line["metadata"]["sample_id"] for line in read_jsonl(run_dir / DATASET)]
    assert len(ids) == len(set(ids)) == PLANNED
    keys = [(v["sample_id"], v["round"], v["step"]) for v in read_jsonl(run_dir / TRAJECTORIES)]
    assert len(keys) == len(set(keys))
    _whole_lines(run_dir)


def test_a_chroma_server_killed_mid_run_is_named_in_one_line_and_resume_finishes(
        tmp_path: Path, killable_chroma_server: ChromaServer) -> None:
    chroma = killable_chroma_server
    run_dir = tmp_path / "runs" / "r"
    with StubOpenAIServer(latency=0.05) as stub:
        proc = _run(tmp_path, stub.url, tmp_path / "runs", "--memory-url", chroma.url)
        # Killed once a sample is done: samples of cultures and topics not yet started still
        # have their knowledge to fetch from the server.
        wait_for(proc, lambda: bool(read_jsonl(run_dir / DATASET)), "a finished sample", 240)
        chroma.kill()
        line = _stop_line(tmp_path, proc, run_dir)
        assert line.startswith(f"error: the Chroma server at {chroma.url} (--memory-url) "
                               "stopped answering ("), line
        assert "once the server answers again, continue it with" in line
        _status(run_dir, line)
        _whole_lines(run_dir)

        chroma.start()  # the same server again, same port and data
        _resume_as_told(tmp_path, line, run_dir)


def test_a_full_disk_mid_run_is_named_in_one_line_and_resume_finishes(tmp_path: Path) -> None:
    # 2.5 MB: the run's setup fits (config, prompts, plan, the space held for run.json), its
    # checkpoints and lines do not (~3.5 MB at their largest).
    with small_disk(tmp_path / "disk", "2500k") as disk, StubOpenAIServer(latency=0.01) as stub:
        run_dir = disk.path / "runs" / "r"
        proc = _run(tmp_path, stub.url, disk.path / "runs", "--memory", ":memory:")
        line = _stop_line(tmp_path, proc, run_dir)
        # Which file meets the full disk first depends on timing; whichever it is, it is named.
        full = re.match(rf"error: (no space left on device|database or disk is full) writing "
                        rf"{re.escape(str(run_dir))}/(\S+);", line)
        assert full and full.group(2) in (TRACE, TRAJECTORIES, DATASET, CHECKPOINTS), line
        assert "make room (or move the directory to a roomier disk), then continue it" in line
        _status(run_dir, line)
        _whole_lines(run_dir)

        disk.grow("64m")  # room made where the run is, so the printed command is the one to run
        _resume_as_told(tmp_path, line, run_dir)


def test_a_full_disk_under_the_checkpoint_file_is_named_like_any_other(tmp_path: Path) -> None:
    """SQLite reports a full disk as its own error (SQLITE_FULL), not as an OSError; which of
    the run's files meets the full disk first is a matter of timing, so this branch is shown
    here on a real SQLite file filled up on a real small disk."""
    with small_disk(tmp_path / "disk", "200k") as disk:
        connection = sqlite3.connect(disk.path / CHECKPOINTS)
        connection.execute("create table t (b blob)")
        with pytest.raises(sqlite3.OperationalError) as full:
            for _ in range(100):
                connection.execute("insert into t values (?)", (bytes(10_000),))
                connection.commit()
        connection.close()
    settings = stub_settings("http://127.0.0.1:9", str(tmp_path))
    assert (stopped_by(full.value, disk.path, settings)
            == f"database or disk is full writing {disk.path / CHECKPOINTS}")
