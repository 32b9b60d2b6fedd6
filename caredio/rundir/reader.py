"""Read-only access to a run directory for the tools (trace, select, export, report).

The tools must work on a finished run, a failed one and one that is still being written, so
every file is optional except the one that makes a directory a run (``run.json`` or
``config.json``); torn last lines are skipped by :func:`caredio.rundir.files.read_jsonl`. A
directory that is not a run is refused with a one-line reason naming the file, before any
output exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from caredio.config.settings import ROLES
from caredio.errors import UserInputError
from caredio.rundir.files import read_jsonl
from caredio.rundir.formats import (
    CONFIG,
    DATASET,
    PLAN,
    PROMPTS,
    RUN_JSON,
    SELECTED,
    TEMPLATE_INDEX,
    TRACE,
    TRAJECTORIES,
    DatasetLine,
    PlanEntry,
    RunRecord,
    TraceLine,
    Version,
    parse_line,
)

AGENTS = ROLES


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(value, dict):
        raise UserInputError(f"{path}: expected a JSON object")
    return value


@dataclass
class RunData:
    """The files of one run directory, loaded lazily and cached."""

    dir: Path
    run: RunRecord = field(default_factory=lambda: RunRecord())
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return str(self.run.get("run_id") or self.config.get("run_id") or self.dir.name)

    @property
    def status(self) -> str:
        return str(self.run.get("status") or "unknown")

    @cached_property
    def dataset(self) -> list[DatasetLine]:
        return read_lines(self.dir / DATASET, DatasetLine)

    @cached_property
    def selected(self) -> list[DatasetLine]:
        return read_lines(self.dir / SELECTED, DatasetLine)

    @cached_property
    def trajectories(self) -> list[Version]:
        return read_lines(self.dir / TRAJECTORIES, Version)

    @cached_property
    def turns(self) -> list[TraceLine]:
        return read_lines(self.dir / TRACE, TraceLine)

    @cached_property
    def plan(self) -> list[PlanEntry]:
        return read_lines(self.dir / PLAN, PlanEntry)

    @cached_property
    def template_index(self) -> dict[str, Any]:
        return _read_json(self.dir / PROMPTS / TEMPLATE_INDEX)

    def samples(self, selected: bool = False) -> list[DatasetLine]:
        """Dataset lines (or the selected ones); refuses when there are none to use."""
        if selected:
            if not (self.dir / SELECTED).exists():
                raise UserInputError(
                    f"{self.dir / SELECTED}: not found; "
                    f"run `caredio select {self.dir} --budget N` first"
                )
            return self.selected
        if not self.dataset:
            raise UserInputError(
                f"{self.dir / DATASET}: no samples yet (run status: {self.status})"
            )
        return self.dataset

    def versions_by_key(self) -> dict[tuple[str, int], Version]:
        """Trajectory versions keyed by (sample_id, round): what the turns of that round made."""
        return {(str(v["sample_id"]), int(v["round"])): v for v in self.trajectories}


L = TypeVar("L")


def read_lines(path: Path, kind: type[L]) -> list[L]:
    """The lines of a run file as their type (:mod:`caredio.rundir.formats`); a line that
    lacks a field every tool relies on is refused, naming the file, line and field."""
    return [parse_line(kind, line, f"{path}:{number}")
            for number, line in enumerate(read_jsonl(path), start=1)]


def open_run(path: str | Path) -> RunData:
    """A run directory, or a UserInputError saying why ``path`` is not one."""
    directory = Path(path)
    if not directory.exists():
        raise UserInputError(f"{directory}: no such run directory")
    if not directory.is_dir():
        raise UserInputError(f"{directory}: not a run directory (a file, not a folder)")
    if not (directory / RUN_JSON).exists() and not (directory / CONFIG).exists():
        raise UserInputError(f"{directory}: not a run directory (no {RUN_JSON} or {CONFIG})")
    run = parse_line(RunRecord, _read_json(directory / RUN_JSON), str(directory / RUN_JSON))
    return RunData(directory, run, _read_json(directory / CONFIG))

