"""The eval directory: every prompt and answer on disk, so an eval can be audited and resumed.

* ``eval.json`` — status, settings (no secrets), files with their sha256, seed, counts, the
  leakage check, timings, tokens, and the results with intervals;
* ``items.jsonl`` — the plan: every item with its rendered prompt and what grades it;
* ``answers.jsonl`` — one line per answered item: raw reply, parsed answer, correct or not,
  tokens, latency, retries and their reasons, error;
* ``excluded.jsonl`` — the questions the leakage check left out, and how they matched;
* ``accuracy.png`` — accuracy per country and task with 95% intervals.

Answer lines are appended whole and flushed; ``eval.json`` and ``items.jsonl`` are written to a
temporary file and renamed. An item is answered once: a resume asks only the items without a
successful answer line.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caredio.errors import UserInputError
from caredio.rundir.files import append_line, atomic_write, directory_lock, read_jsonl
from caredio.rundir.formats import CONFIG, RUN_JSON

EVAL_JSON = "eval.json"
ITEMS = "items.jsonl"
ANSWERS = "answers.jsonl"
EXCLUDED = "excluded.jsonl"
PLOT = "accuracy.png"
KIND = "caredio-eval"


def _dump(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def refuse_occupied(directory: Path) -> None:
    """An eval goes into a new or empty directory, never over another eval or a run."""
    if directory.exists() and not directory.is_dir():
        raise UserInputError(f"--out: {directory} is a file, not a directory")
    if (directory / EVAL_JSON).exists() or (directory / ITEMS).exists():
        raise UserInputError(f"--out: {directory} already holds an eval; resume it with "
                             f"`caredio eval --resume {directory}` or choose another --out")
    if (directory / RUN_JSON).exists() or (directory / CONFIG).exists():
        raise UserInputError(f"--out: {directory} holds a run; an eval needs its own directory")


class EvalRecorder:
    """Owns the files of one eval directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self._lock = threading.Lock()
        self._done = {a["item_id"] for a in read_jsonl(directory / ANSWERS) if not a.get("error")}

    @classmethod
    def create(cls, directory: Path, record: dict[str, Any], items: list[dict[str, Any]],
               excluded: list[dict[str, Any]]) -> EvalRecorder:
        refuse_occupied(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(directory / ITEMS, _dump(items))
        atomic_write(directory / EXCLUDED, _dump(excluded))
        recorder = cls(directory)
        recorder.write(**record)
        return recorder

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return directory_lock(self.dir, "eval")

    def done(self, item_id: str) -> bool:
        return item_id in self._done

    def append_answer(self, record: dict[str, Any]) -> bool:
        """Append an answer line unless the item already has a successful one; True if written."""
        with self._lock:
            if record["item_id"] in self._done:
                return False
            if not record.get("error"):
                self._done.add(record["item_id"])
            append_line(self.dir / ANSWERS, record)
            return True

    def read(self) -> dict[str, Any]:
        path = self.dir / EVAL_JSON
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def write(self, **fields: Any) -> dict[str, Any]:
        with self._lock:
            record = self.read()
            record.update(fields)
            record["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            atomic_write(self.dir / EVAL_JSON, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
            return record


@dataclass
class EvalData:
    """An eval directory as read back: its record, plan and final answer per item."""

    dir: Path
    record: dict[str, Any]
    items: list[dict[str, Any]]
    answers: dict[str, dict[str, Any]]  # item id -> the last answer line (a success wins)

    @property
    def eval_id(self) -> str:
        return str(self.record.get("eval_id") or self.dir.name)

    def outcomes(self) -> dict[tuple[str, str], dict[str, float]]:
        """(task, country) -> {item id: 1.0 correct / 0.0 wrong}, answered items only."""
        found: dict[tuple[str, str], dict[str, float]] = {}
        for item in self.items:
            answer = self.answers.get(item["item_id"])
            if answer is None or answer.get("error"):
                continue
            found.setdefault((item["task"], item["country"]), {})[item["item_id"]] = float(
                bool(answer["correct"]))
        return found


def latest_answers(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    answers: dict[str, dict[str, Any]] = {}
    for line in lines:
        previous = answers.get(line.get("item_id", ""))
        if previous is None or previous.get("error"):
            answers[str(line.get("item_id"))] = line
    return answers


def is_eval_dir(directory: Path) -> bool:
    return (directory / EVAL_JSON).is_file()


def open_eval(path: str | Path) -> EvalData:
    """An eval directory, or a one-line UserInputError saying why ``path`` is not one."""
    directory = Path(path)
    if not directory.is_dir():
        raise UserInputError(f"{directory}: no such eval directory")
    if not is_eval_dir(directory):
        raise UserInputError(f"{directory}: not an eval directory (no {EVAL_JSON})")
    try:
        record = json.loads((directory / EVAL_JSON).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{directory / EVAL_JSON}: not valid JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("kind") != KIND:
        raise UserInputError(f"{directory / EVAL_JSON}: not a caredio eval record")
    items = read_jsonl(directory / ITEMS)
    for number, item in enumerate(items, start=1):
        if not {"item_id", "task", "country", "messages"} <= set(item):
            raise UserInputError(f"{directory / ITEMS}:{number}: not an eval item")
    return EvalData(directory, record, items, latest_answers(read_jsonl(directory / ANSWERS)))
