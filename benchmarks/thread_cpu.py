"""CPU time of this process's threads over a block of work, grouped by what each thread is.

Read from ``/proc/self/task`` (Linux only), every ``interval`` seconds while the block runs, so
a thread that ends before the block does still counts (up to its last reading). Python threads
are named by their Python name, native ones (Chroma's Rust runtime, SQLite's worker) by the
kernel's; numbered pools are folded into one group (``asyncio_0``..``asyncio_5`` -> ``asyncio``).
The sampler's own thread is left out (by thread id); it costs ~0.3 ms of CPU per LLM call at
C=16 (the process total less the threads' sum, fake embedder), which the process totals then
include, so compare runs made alike.
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from types import TracebackType

_TICKS = os.sysconf("SC_CLK_TCK")
_NUMBERED = re.compile(r"^Thread-\d+ \((?P<target>[^)]*)\)$|[_-]?\d+$")


def _group(name: str) -> str:
    match = _NUMBERED.search(name)
    if match is None:
        return name
    return match.group("target") or name[:match.start()] or name


class ThreadCPU:
    """``with ThreadCPU() as cpu: ...`` then ``cpu.seconds`` (group -> CPU seconds)."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.seconds: dict[str, float] = {}
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}
        # A thread's Python name, once seen: a thread just joined can still be listed in /proc
        # after it has left threading.enumerate(), and would then go by the kernel's name only.
        self._names: dict[str, str] = {}
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="thread-cpu-sampler", daemon=True)

    def _read(self) -> dict[str, float]:
        python_names = {str(t.native_id): t.name for t in threading.enumerate()}
        readings = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                with open(f"/proc/self/task/{tid}/comm") as comm:
                    native = comm.read().strip()
            except FileNotFoundError:  # the thread ended between listing and reading
                continue
            if tid in python_names or tid not in self._names:
                self._names[tid] = python_names.get(tid, native)
            # utime and stime: fields 14 and 15 of stat, 12 and 13 after the name's ")"
            readings[tid] = (int(fields[11]) + int(fields[12])) / _TICKS
        return readings

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._last.update(self._read())

    def __enter__(self) -> ThreadCPU:
        self._first = self._read()
        self._sampler.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._sampler.join()
        self._last.update(self._read())
        totals: Counter[str] = Counter()
        for tid, cpu in self._last.items():
            if tid != str(self._sampler.native_id):
                totals[_group(self._names[tid])] += cpu - self._first.get(tid, 0.0)
        self.seconds = dict(totals.most_common())
