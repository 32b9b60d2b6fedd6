"""Writing files so that a crash never leaves a half-written record, and reading them back.

Appends are whole lines flushed at once (a line that cannot be written whole is taken back);
whole files are written to a temporary name, fsynced and renamed. Readers skip a torn last
line. The run directory, the eval directory and review files all write through these.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from caredio.errors import UserInputError, WriteFailed
from caredio.rundir.formats import LOCK


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


def allocate(fd: int, size: int) -> None:
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
