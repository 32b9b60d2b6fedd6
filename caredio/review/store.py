"""``review.jsonl``: every decision a reviewer makes, appended the moment it is made.

The file is a log and is never rewritten: a killed server or a closed tab loses nothing already
answered, and two servers on one run directory (two reviewers on one machine) only ever append.
What stands is computed on reading:

* per reviewer and sample, the reviewer's latest decision that no ``undo`` took back;
* ``undo`` takes back the reviewer's latest decision still standing (any sample): pressing
  ``u`` again goes one further back, as in an editor.

A line cut off by a crash mid-write (the last line, or one an append after the crash left
between two whole lines) is skipped with a warning naming it, never a crash; a whole line that
is not a decision (a field missing or wrong) is bad input naming the line and the field.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caredio.rundir.files import append_line
from caredio.rundir.formats import REVIEW, ReviewDecision, ReviewText, parse_line

log = logging.getLogger(__name__)

# The short list a reviewer picks a reject reason from (keys 1-6 on the page), or types another.
REJECT_REASONS = (
    "factually wrong",
    "stereotype or offensive",
    "not specific to the culture",
    "does not answer the question",
    "garbled or unnatural",
    "duplicate of another sample",
)
KEEPS = ("accept", "edit")  # decisions that keep a sample in the dataset


def review_path(run_dir: Path) -> Path:
    return run_dir / REVIEW


def now() -> str:
    """UTC, to the millisecond: decisions of one session sort in the order they were made."""
    stamp = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1000):03d}Z"


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def read_decisions(path: Path) -> tuple[list[ReviewDecision], list[str]]:
    """The decisions of a review file in file order, and a warning per line skipped as torn."""
    if not path.exists():
        return [], []
    decisions: list[ReviewDecision] = []
    warnings: list[str] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                # Only a crash mid-write makes a line that is not JSON (appends are whole lines);
                # what was decided before it and after it still stands.
                warnings.append(f"{path}:{number}: skipped a torn line (cut off mid-write; "
                                f"{len(text)} characters)")
                continue
            decisions.append(parse_line(ReviewDecision, value, f"{path}:{number}"))
    for warning in warnings:
        log.warning("%s", warning)
    return decisions, warnings


def standing(decisions: Iterable[ReviewDecision]) -> dict[tuple[str, str], ReviewDecision]:
    """(reviewer, sample id) -> the reviewer's decision on the sample that stands."""
    ordered = list(decisions)
    taken_back = {d.get("undoes") for d in ordered if d["decision"] == "undo"}
    result: dict[tuple[str, str], ReviewDecision] = {}
    for decision in ordered:
        if decision["decision"] == "undo" or decision["id"] in taken_back:
            continue
        result[(decision["reviewer"], decision["sample_id"])] = decision
    return result


@dataclass
class ReviewLog:
    """One run's review file as it grows: its decisions, what stands, and appending to it.

    Safe to share between the threads of the web app (a lock around reading and appending);
    another process appending to the same file is seen at the next :meth:`refresh`."""

    path: Path
    decisions: list[ReviewDecision] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _standing: dict[tuple[str, str], ReviewDecision] = field(default_factory=dict)
    _size: int = -1
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def open(cls, run_dir: Path) -> ReviewLog:
        log_ = cls(review_path(run_dir))
        log_.refresh()
        return log_

    def refresh(self) -> bool:
        """Read the file again if it changed since it was last read or appended here."""
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size == self._size:
                return False
            self.decisions, self.warnings = read_decisions(self.path)
            self._standing = standing(self.decisions)
            self._size = size
            return True

    def standing(self) -> dict[tuple[str, str], ReviewDecision]:
        with self._lock:
            return dict(self._standing)

    def mine(self, reviewer: str) -> dict[str, ReviewDecision]:
        """Sample id -> this reviewer's standing decision."""
        with self._lock:
            return {sample: d for (who, sample), d in self._standing.items() if who == reviewer}

    def of_sample(self, sample_id: str) -> dict[str, ReviewDecision]:
        """Reviewer -> their standing decision on this sample."""
        with self._lock:
            return {who: d for (who, sample), d in self._standing.items() if sample == sample_id}

    def append(self, record: dict[str, Any]) -> ReviewDecision:
        """Write one decision (a whole line, flushed before this returns) and count it."""
        decision = parse_line(ReviewDecision, {"id": new_id(), "time": now(), **record},
                              f"{self.path} (new decision)")
        with self._lock:
            self.refresh()  # another process's lines first, so ours sorts after them
            append_line(self.path, dict(decision))
            self.decisions.append(decision)
            if decision["decision"] == "undo":
                self._standing = standing(self.decisions)
            else:
                self._standing[(decision["reviewer"], decision["sample_id"])] = decision
            self._size = self.path.stat().st_size
            # os.fsync: the line is on disk, not only in the page cache, before the page is told.
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return decision

    def last_standing(self, reviewer: str) -> ReviewDecision | None:
        """The reviewer's latest decision that no undo took back (what ``u`` takes back)."""
        with self._lock:
            taken_back = {d.get("undoes") for d in self.decisions if d["decision"] == "undo"}
            for decision in reversed(self.decisions):
                if (decision["reviewer"] == reviewer and decision["decision"] != "undo"
                        and decision["id"] not in taken_back):
                    return decision
        return None


def text_of(question: str, response: str) -> ReviewText:
    return {"question": question, "response": response}
