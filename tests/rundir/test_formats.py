"""The run directory's line types (caredio/rundir/formats.py) read what earlier releases wrote.

``tests/rundir/fixtures/run-0.1.0`` is a run written by the release before the typed formats existed
(the real graph against the FAKE stub server, with the FAKE hash embedder; its checkpoint file
left out). Every file of it must parse as its type, and the tools that read run directories
must work on it unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from caredio.errors import UserInputError
from caredio.rundir.formats import TRACE_FIELDS, DatasetLine, Version, parse_line
from caredio.rundir.reader import open_run
from testing.cli import in_process_cli

FIXTURE = Path(__file__).parent / "fixtures" / "run-0.1.0"


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "run-0.1.0"))


def test_every_file_of_a_run_written_by_the_previous_release_parses_as_its_type(old_run: Path) -> None:
    run = open_run(old_run)
    assert run.run["status"] == "completed" and run.run["completed"] == 2
    assert [line["metadata"]["sample_id"] for line in run.dataset] == [
        entry["sample_id"] for entry in run.plan]
    assert run.selected and len(run.trajectories) == 4 and run.turns
    versions = {(v["sample_id"], v["round"]): v for v in run.trajectories}
    for line in run.dataset:
        meta = line["metadata"]
        best = versions[(meta["sample_id"], meta["best_round"])]
        assert meta["objective"] == best["objective"]
        assert line["messages"][-1]["content"] == best["response"]
    # The release wrote every field its trace line type names (and no tool lost one on reading);
    # the response cache's fields came after it.
    named_then = set(TRACE_FIELDS) - {"cached", "cache"}
    assert all(named_then <= set(turn) for turn in run.turns)
    # Keys a type does not name are kept, not dropped.
    assert run.run["tokens"]["culture_expert"]["calls"] > 0


def test_the_tools_work_on_a_run_written_by_the_previous_release(
        old_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cli = in_process_cli(monkeypatch, capsys)
    code, out, err = cli("trace", str(old_run), "--json")
    assert code == 0, err
    turns = [json.loads(line) for line in out.splitlines()]
    assert len(turns) == len(open_run(old_run).turns)
    code, out, err = cli("export", str(old_run), "--format", "openai", "--out", str(tmp_path / "o.jsonl"))
    assert code == 0, err
    exported = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [e["messages"] for e in exported] == [line["messages"] for line in open_run(old_run).dataset]


def test_a_line_missing_a_field_every_tool_needs_is_named_with_its_file_and_line() -> None:
    good: dict[str, Any] = {"messages": [], "metadata": {"sample_id": "s", "culture": "c", "objective": 0.5}}
    assert parse_line(DatasetLine, good, "d.jsonl:1")["metadata"]["objective"] == 0.5
    with pytest.raises(UserInputError, match=r"^d\.jsonl:2: metadata\.culture: missing$"):
        parse_line(DatasetLine, {"messages": [], "metadata": {"sample_id": "s", "objective": 0.5}}, "d.jsonl:2")
    with pytest.raises(UserInputError, match=r"^t\.jsonl:3: objective: "):
        parse_line(Version, {"sample_id": "s", "round": 0, "step": "initial", "question": "q",
                             "response": "r", "representativeness": 0.1, "distinctiveness": 0.2,
                             "objective": "high"}, "t.jsonl:3")
