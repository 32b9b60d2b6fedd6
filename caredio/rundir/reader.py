"""Read-only access to a run directory for the tools (trace, select, export, report).

The tools must work on a finished run, a failed one and one that is still being written, so
every file is optional except the one that makes a directory a run (``run.json`` or
``config.json``); torn last lines are skipped by :func:`caredio.rundir.recorder.read_jsonl`. A
directory that is not a run is refused with a one-line reason naming the file, before any
output exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from caredio.errors import UserInputError
from caredio.rundir.recorder import (
    CONFIG,
    DATASET,
    PROMPTS,
    RUN_JSON,
    SELECTED,
    TRACE,
    TRAJECTORIES,
    read_jsonl,
)

AGENTS = ("culture_expert", "contrast_critic", "refiner")


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
    run: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return str(self.run.get("run_id") or self.config.get("run_id") or self.dir.name)

    @property
    def status(self) -> str:
        return str(self.run.get("status") or "unknown")

    @cached_property
    def dataset(self) -> list[dict[str, Any]]:
        return _checked_lines(self.dir / DATASET)

    @cached_property
    def selected(self) -> list[dict[str, Any]]:
        return _checked_lines(self.dir / SELECTED)

    @cached_property
    def trajectories(self) -> list[dict[str, Any]]:
        return read_jsonl(self.dir / TRAJECTORIES)

    @cached_property
    def turns(self) -> list[dict[str, Any]]:
        return read_jsonl(self.dir / TRACE)

    @cached_property
    def template_index(self) -> dict[str, Any]:
        return _read_json(self.dir / PROMPTS / "index.json")

    def samples(self, selected: bool = False) -> list[dict[str, Any]]:
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

    def versions_by_key(self) -> dict[tuple[str, int], dict[str, Any]]:
        """Trajectory versions keyed by (sample_id, round): what the turns of that round made."""
        return {(str(v["sample_id"]), int(v["round"])): v for v in self.trajectories}


def _checked_lines(path: Path) -> list[dict[str, Any]]:
    """Dataset lines, refusing ones that lack the fields every tool relies on."""
    lines = read_jsonl(path)
    for number, line in enumerate(lines, start=1):
        meta = line.get("metadata") if isinstance(line, dict) else None
        if not isinstance(meta, dict) or not isinstance(line.get("messages"), list):
            raise UserInputError(f"{path}:{number}: expected 'messages' and 'metadata' fields")
        for key in ("sample_id", "culture", "objective"):
            if key not in meta:
                raise UserInputError(f"{path}:{number}: metadata.{key} is missing")
    return lines


def open_run(path: str | Path) -> RunData:
    """A run directory, or a UserInputError saying why ``path`` is not one."""
    directory = Path(path)
    if not directory.exists():
        raise UserInputError(f"{directory}: no such run directory")
    if not directory.is_dir():
        raise UserInputError(f"{directory}: not a run directory (a file, not a folder)")
    if not (directory / RUN_JSON).exists() and not (directory / CONFIG).exists():
        raise UserInputError(f"{directory}: not a run directory (no {RUN_JSON} or {CONFIG})")
    return RunData(directory, _read_json(directory / RUN_JSON), _read_json(directory / CONFIG))

