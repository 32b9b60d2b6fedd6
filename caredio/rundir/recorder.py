"""The run directory: every stage's output on disk, so a run can be inspected and resumed.

Appends are whole lines flushed at once; ``run.json`` and snapshots are written to a temporary
file and renamed, so a crash never leaves a half-written record. Dataset and trajectory lines
are keyed (sample id; sample id + round + step), so a step redone after a resume is not
written twice.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from caredio.errors import UserInputError, WriteFailed
from caredio.prompts import PromptTemplate

DATASET = "dataset.jsonl"
SELECTED = "selected.jsonl"
TRAJECTORIES = "trajectories.jsonl"
TRACE = "trace.jsonl"
RUN_JSON = "run.json"
CONFIG = "config.json"
CHECKPOINTS = "checkpoints.sqlite"
PLAN = "plan.jsonl"
LOCK = ".lock"
RESERVE = ".reserve"
# Disk set aside for run.json's last write (a few KB as a rule; ~200 bytes more per failed
# sample listed): a run stopped by a full disk still records how it ended.
RESERVE_BYTES = 256 * 1024
PROMPTS = "prompts"


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write to a temporary file, fsync, rename: readers see the old file or the whole new one.

    A write that fails (a full disk) leaves the old file and no temporary one, and is raised as
    WriteFailed naming ``path``."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, WriteFailed):
            raise WriteFailed(exc.errno, exc.strerror, str(path)) from exc
        raise


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target``, on any
    failure it is removed: readers see the old folder or the whole new one."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line, written whole or not at all.

    A write that fails (a full disk) is taken back to the file's previous end and raised as
    WriteFailed naming ``path``. A crash mid-write can still leave a torn last line without its
    newline; the next line starts on a line of its own, so the torn one is skipped by
    :func:`read_jsonl` instead of swallowing the new record.
    """
    data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        raise WriteFailed(exc.errno, exc.strerror, str(path)) from exc
    try:
        end = os.fstat(fd).st_size
        if end and os.pread(fd, 1, end - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:  # os.write may write part of it (a disk filling up) and say how much
            view = view[os.write(fd, view):]
    except OSError as exc:
        # Truncating frees space, so this works on a full disk too; if even it fails, readers
        # skip the torn line (see above).
        with contextlib.suppress(OSError):
            os.ftruncate(fd, end)
        raise WriteFailed(exc.errno, exc.strerror, str(path)) from exc
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Lines of a JSONL file; a torn last line (a crash mid-write) is skipped."""
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


class RecordWriter(Protocol):
    """Where a sample's versions and dataset line go: the run directory's recorder, or (in a
    Ray worker) a forwarder to the driver, which is the only writer of the run directory."""

    def write_version(self, version: dict[str, Any]) -> None: ...

    def write_sample(self, line: dict[str, Any]) -> bool: ...


class RunRecorder:
    """Owns the files of one run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self._lock = threading.Lock()
        self._dataset_ids = {r["metadata"]["sample_id"] for r in read_jsonl(run_dir / DATASET)}
        self._version_keys = {
            (r["sample_id"], r["round"], r["step"]) for r in read_jsonl(run_dir / TRAJECTORIES)
        }
        self.tokens: dict[str, dict[str, int]] = defaultdict(
            lambda: {"input": 0, "output": 0, "calls": 0})
        self.retries = 0
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

    def _append(self, name: str, record: dict[str, Any]) -> None:
        append_line(self.dir / name, record)

    def write_version(self, version: dict[str, Any]) -> None:
        key = (version["sample_id"], version["round"], version["step"])
        with self._lock:
            if key in self._version_keys:
                return
            self._append(TRAJECTORIES, version)
            self._version_keys.add(key)  # only once on disk: a failed write is not "written"

    def write_sample(self, line: dict[str, Any]) -> bool:
        """Append a dataset line unless the sample is already there; True if written."""
        with self._lock:
            sample_id = line["metadata"]["sample_id"]
            if sample_id in self._dataset_ids:
                return False
            self._append(DATASET, line)
            self._dataset_ids.add(sample_id)
            return True

    # -- trace sink: counts tokens per role as turns go by -----------------------------------

    def emit(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._append(TRACE, record)
            self._count(record)  # after: run.json counts what the trace holds

    def _count(self, record: dict[str, Any]) -> None:
        usage = self.tokens[record["agent"]]
        usage["input"] += int(record.get("input_tokens") or 0)
        usage["output"] += int(record.get("output_tokens") or 0)
        usage["calls"] += 1
        self.retries += int(record.get("retries") or 0)

    # -- run.json ----------------------------------------------------------------------------

    def hold_space(self) -> None:
        """Set RESERVE_BYTES of the run directory's disk aside until :meth:`free_space`, so the
        run's last status can be written even after its other files filled the disk."""
        path = self.dir / RESERVE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
            try:
                _allocate(fd, RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise WriteFailed(exc.errno, exc.strerror, str(path)) from exc

    def free_space(self) -> None:
        """Give the space of :meth:`hold_space` back (for run.json's last write)."""
        (self.dir / RESERVE).unlink(missing_ok=True)

    def read_run(self) -> dict[str, Any]:
        path = self.dir / RUN_JSON
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def write_run(self, **fields: Any) -> dict[str, Any]:
        with self._lock:
            record = self.read_run()
            record.update(fields)
            record["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
            atomic_write(self.dir / RUN_JSON, text)
            return record


def _allocate(fd: int, size: int) -> None:
    """Make the file ``size`` bytes long with its blocks allocated (not a sparse file)."""
    if hasattr(os, "posix_fallocate"):  # not on macOS
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            # A file system that cannot fallocate (EINVAL, EOPNOTSUPP): zeros written hold it too.
    os.pwrite(fd, bytes(size), 0)


@contextlib.contextmanager
def directory_lock(directory: Path, what: str) -> Iterator[None]:
    """Hold a run (or eval) directory for this process; a second process on it is refused."""
    with (directory / LOCK).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserInputError(
                f"{directory}: another caredio process is running this {what}"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def snapshot_templates(run_dir: Path, templates: dict[str, PromptTemplate]) -> None:
    folder = run_dir / PROMPTS
    folder.mkdir(exist_ok=True)
    index = {}
    for name, template in templates.items():
        atomic_write(folder / f"{name}.txt", template.text)
        index[name] = {"hash": template.hash, "source": template.source}
    atomic_write(folder / "index.json", json.dumps(index, indent=2) + "\n")


def templates_hash(templates: dict[str, PromptTemplate]) -> str:
    import hashlib

    joined = "".join(f"{name}:{templates[name].hash}" for name in sorted(templates))
    return hashlib.sha256(joined.encode()).hexdigest()[:12]
