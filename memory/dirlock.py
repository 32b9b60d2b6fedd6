"""One process at a time per persistent memory directory.

Chroma's embedded client (``PersistentClient``) keeps the HNSW index of a directory in the
memory of the process that opened it; a second process writing the same directory works on
its own copy, and what one of them writes is lost or corrupts the index. So a memory
directory is locked (``flock`` on a file inside it, released by the kernel when the process
ends, however it ends) while a process has it open, and a second process is refused with the
holder's pid and command. Several memories of one process on the same directory share the
lock. To share a memory between processes, use a Chroma server (``--memory-url``).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from caredio.errors import UserInputError

LOCK_FILE = "caredio.lock"

_held: dict[Path, _Hold] = {}
_guard = threading.Lock()


@dataclass
class _Hold:
    handle: IO[str]
    count: int


class MemoryDirLock:
    """This process's hold on a memory directory; :meth:`release` once done with it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._released = False

    @classmethod
    def acquire(cls, path: str | Path) -> MemoryDirLock:
        directory = Path(path).resolve()
        with _guard:
            hold = _held.get(directory)
            if hold is None:
                directory.mkdir(parents=True, exist_ok=True)
                handle = (directory / LOCK_FILE).open("a+", encoding="utf-8")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _describe_holder(handle)
                    handle.close()
                    raise UserInputError(
                        f"{path}: memory directory in use by another caredio process "
                        f"({holder}); wait for it to finish, or share memory between processes "
                        "through a Chroma server (--memory-url)"
                    ) from None
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps({"pid": os.getpid(), "command": _command(),
                                         "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
                handle.flush()
                hold = _held[directory] = _Hold(handle, 0)
            hold.count += 1
        return cls(directory)

    def release(self) -> None:
        with _guard:
            if self._released:
                return
            self._released = True
            hold = _held.get(self.directory)
            if hold is None:
                return
            hold.count -= 1
            if hold.count == 0:
                del _held[self.directory]
                hold.handle.close()  # closing the last descriptor drops the flock


def _command() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return " ".join([name, *sys.argv[1:]])[:200]


def _describe_holder(handle: IO[str]) -> str:
    handle.seek(0)
    try:
        holder: dict[str, Any] = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:  # written by a process killed mid-write: nothing to name
        holder = {}
    if not holder.get("pid"):
        return "pid unknown"
    return f"pid {holder['pid']}: {holder.get('command', '?')}, since {holder.get('since', '?')}"
