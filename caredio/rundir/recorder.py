"""The run directory's one writer: every stage's output on disk, so a run can be inspected and
resumed.

Dataset and trajectory lines are keyed (sample id; sample id + round + step), so a step
redone after a resume is not written twice. The line types are in :mod:`caredio.rundir.formats`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, Unpack

from caredio.errors import UserInputError, WriteFailed
from caredio.prompts import PromptTemplate
from caredio.rundir.files import allocate, append_line, atomic_write, directory_lock, read_jsonl
from caredio.rundir.formats import (
    CHECKPOINTS,
    CONFIG,
    DATASET,
    PLAN,
    PROMPTS,
    RESERVE,
    RUN_JSON,
    SELECTED,
    TEMPLATE_INDEX,
    TRACE,
    TRAJECTORIES,
    CacheRecord,
    DatasetLine,
    PlanEntry,
    RoleTokens,
    RunRecord,
    TraceLine,
    Version,
)

# Disk set aside for run.json's last write (a few KB as a rule; ~200 bytes more per failed
# sample listed): a run stopped by a full disk still records how it ended.
RESERVE_BYTES = 256 * 1024


class RecordWriter(Protocol):
    """Where a sample's versions and dataset line go: the run directory's recorder, or (in a
    Ray worker) a forwarder to the driver, which is the only writer of the run directory."""

    def write_version(self, version: Version) -> None: ...

    def write_sample(self, line: DatasetLine) -> bool: ...


class RunRecorder:
    """Owns the files of one run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self._lock = threading.Lock()
        self._dataset_ids = {r["metadata"]["sample_id"] for r in read_jsonl(run_dir / DATASET)}
        self._version_keys = {
            (r["sample_id"], r["round"], r["step"]) for r in read_jsonl(run_dir / TRAJECTORIES)
        }
        self.tokens: dict[str, RoleTokens] = defaultdict(
            lambda: {"input": 0, "output": 0, "calls": 0})
        self.retries = 0
        # The response cache's answers (llm.cache), counted apart from the tokens spent.
        self.cache_use = {"hits": 0, "misses": 0, "saved_input_tokens": 0, "saved_output_tokens": 0}
        # A resumed run counts on from every turn already on disk (the trace is the record of
        # what was spent; run.json may be stale after a kill), not from zero.
        for turn in read_jsonl(run_dir / TRACE):
            self._count(turn)

    @classmethod
    def create(cls, run_dir: Path, settings_snapshot: dict[str, Any],
               templates: dict[str, PromptTemplate]) -> RunRecorder:
        """Make a new run directory; refuse one that already holds a run."""
        if any((run_dir / name).exists() for name in (RUN_JSON, CONFIG, DATASET, CHECKPOINTS)):
            raise UserInputError(
                f"{run_dir}: already holds a run; use `caredio resume {run_dir}` "
                "or another --run-id"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / CONFIG, json.dumps(settings_snapshot, indent=2) + "\n")
        snapshot_templates(run_dir, templates)
        return cls(run_dir)

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the run directory for this process; a second run or resume of it is refused."""
        return directory_lock(self.dir, "run")

    # -- lines -------------------------------------------------------------------------------

    def _append(self, name: str, record: Any) -> None:
        append_line(self.dir / name, record)

    def write_plan(self, plan: Sequence[PlanEntry]) -> None:
        """``plan.jsonl``, written once: a resumed run follows it (it cannot drift with memory)."""
        atomic_write(self.dir / PLAN, "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in plan))

    def read_plan(self) -> list[PlanEntry]:
        return [PlanEntry(**line) for line in read_jsonl(self.dir / PLAN)]  # type: ignore[typeddict-item]

    def write_version(self, version: Version) -> None:
        key = (version["sample_id"], version["round"], version["step"])
        with self._lock:
            if key in self._version_keys:
                return
            self._append(TRAJECTORIES, version)
            self._version_keys.add(key)  # only once on disk: a failed write is not "written"

    def write_sample(self, line: DatasetLine) -> bool:
        """Append a dataset line unless the sample is already there; True if written."""
        with self._lock:
            sample_id = line["metadata"]["sample_id"]
            if sample_id in self._dataset_ids:
                return False
            self._append(DATASET, line)
            self._dataset_ids.add(sample_id)
            return True

    # -- trace sink: counts tokens per role as turns go by -----------------------------------

    def emit(self, record: TraceLine) -> None:
        with self._lock:
            self._append(TRACE, record)
            self._count(record)  # after: run.json counts what the trace holds

    def _count(self, record: TraceLine | dict[str, Any]) -> None:
        usage = self.tokens[record["agent"]]
        usage["input"] += int(record.get("input_tokens") or 0)
        usage["output"] += int(record.get("output_tokens") or 0)
        usage["calls"] += 1
        self.retries += int(record.get("retries") or 0)
        use = record.get("cache") or {}
        self.cache_use["hits"] += int(use.get("hits") or 0)
        self.cache_use["misses"] += int(use.get("misses") or 0)
        self.cache_use["saved_input_tokens"] += int(use.get("input_tokens") or 0)
        self.cache_use["saved_output_tokens"] += int(use.get("output_tokens") or 0)

    def cache_record(self, path: str | None) -> CacheRecord | None:
        """run.json's ``cache`` for the cache file ``path`` (None: the run has no cache)."""
        if path is None:
            return None
        use = self.cache_use
        return {"file": path, "hits": use["hits"], "misses": use["misses"],
                "saved_input_tokens": use["saved_input_tokens"],
                "saved_output_tokens": use["saved_output_tokens"]}

    # -- run.json ----------------------------------------------------------------------------

    def hold_space(self) -> None:
        """Set RESERVE_BYTES of the run directory's disk aside until :meth:`free_space`, so the
        run's last status can be written even after its other files filled the disk."""
        path = self.dir / RESERVE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
            try:
                allocate(fd, RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise WriteFailed(exc.errno, exc.strerror, str(path)) from exc

    def free_space(self) -> None:
        """Give the space of :meth:`hold_space` back (for run.json's last write)."""
        (self.dir / RESERVE).unlink(missing_ok=True)

    def read_run(self) -> RunRecord:
        path = self.dir / RUN_JSON
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def write_run(self, **fields: Unpack[RunRecord]) -> RunRecord:
        """Update ``run.json`` with ``fields`` (keys of :class:`RunRecord`), atomically."""
        with self._lock:
            record = self.read_run()
            record.update(fields)
            record["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
            atomic_write(self.dir / RUN_JSON, text)
            return record


def write_selected(run_dir: Path, lines: Sequence[DatasetLine]) -> Path:
    """``selected.jsonl``, whole: the run-end selection and ``caredio select`` both write it
    here (never while a run's recorder appends to it: it is not appended)."""
    path = run_dir / SELECTED
    atomic_write(path, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    return path


def snapshot_templates(run_dir: Path, templates: dict[str, PromptTemplate]) -> None:
    folder = run_dir / PROMPTS
    folder.mkdir(exist_ok=True)
    index = {}
    for name, template in templates.items():
        atomic_write(folder / f"{name}.txt", template.text)
        index[name] = {"hash": template.hash, "source": template.source}
    atomic_write(folder / TEMPLATE_INDEX, json.dumps(index, indent=2) + "\n")


def templates_hash(templates: dict[str, PromptTemplate]) -> str:
    joined = "".join(f"{name}:{templates[name].hash}" for name in sorted(templates))
    return hashlib.sha256(joined.encode()).hexdigest()[:12]
