"""CLI surface: help texts, topics, prompts commands (no model involved)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

RUN_FLAGS = ("--cultures", "--topics", "--samples-per-topic", "--max-rounds", "--out", "--config",
             "--memory", "--base-url", "--model", "--concurrency", "--demo", "--quiet", "--prompts",
             "--contrast", "--gguf", "--run-id")


def caredio(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "caredio.cli.main", *args], capture_output=True,
                          text=True, timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin",
                                                       "HF_HUB_OFFLINE": "1"})


def test_run_help_documents_every_flag() -> None:
    result = caredio("run", "--help")
    assert result.returncode == 0
    for flag in RUN_FLAGS:
        assert re.search(rf"{flag}\b", result.stdout), flag


def test_every_command_has_help() -> None:
    for command in (["topics"], ["resume"], ["score"], ["memory", "ingest"], ["memory", "stats"],
                    ["prompts", "list"], ["prompts", "check"], ["local-llm", "serve"]):
        result = caredio(*command, "--help")
        assert result.returncode == 0, command
        assert "Usage" in result.stdout


def test_topics_json_has_38_topics() -> None:
    result = caredio("topics", "--json")
    topics = json.loads(result.stdout)
    assert len(topics) == 38
    assert {"id", "name", "description"} == set(topics[0])


def test_prompts_init_check_and_broken_template(tmp_path: Path) -> None:
    folder = tmp_path / "prompts"
    assert caredio("prompts", "init", str(folder)).returncode == 0
    assert caredio("prompts", "check", str(folder)).returncode == 0
    target = folder / "refiner_response.txt"
    target.write_text(target.read_text() + "\n{{ nonsense_var }}\n")
    result = caredio("prompts", "check", str(folder))
    assert result.returncode == 2
    assert f"{target}:" in result.stderr and "nonsense_var" in result.stderr
    diff = caredio("prompts", "diff", str(folder))
    assert "+{{ nonsense_var }}" in diff.stdout


def test_broken_template_stops_a_run_before_anything_is_written(tmp_path: Path) -> None:
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "culture_expert_question.txt").write_text("[user]\n{{ culture }} {{ topic }} {{ knowledge }} {{ oops }}\n")
    out = tmp_path / "runs"
    result = caredio("run", "--prompts", str(folder), "--out", str(out), "--memory", ":memory:")
    assert result.returncode == 2
    assert "oops" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
