"""Leak-free by construction: the questions an evaluation must leave out, and why.

A question is *leaked* when the memory that generated the training data holds it:

* **by id** — an item's id or its ``question_id`` is the question's BLEnD id (memories built
  by the BLEnD importer carry it);
* **by text** — the question's words (with the country removed, as the importer stores them,
  or as written in the file) appear in order inside an item's text, an accepted sample, or a
  question of the run's dataset. Memories built before ``question_id`` existed are caught
  this way: every BLEnD item's text starts with its question.

BLEnD uses one question id for every country, and the importer's text of a question is the
same for every country once the country is removed. A question found for one country is
therefore left out for all: a model trained on the UK's answer to "a popular food to go with
beer" has seen that question, and the multiple-choice items of other countries offer the UK's
answer as a distractor.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caredio.config.urls import is_redacted
from caredio.conversation import question_response
from caredio.errors import UserInputError
from caredio.evaluation.tasks import CountryFile
from caredio.memory.contents import MemoryContents, read_contents
from caredio.rundir.reader import open_run

log = logging.getLogger(__name__)
MIN_WORDS = 4  # shorter questions ("Favourite sport?") would match any text by chance
KEY = 3


def plain_words(text: str) -> tuple[str, ...]:
    """Lower-case words, punctuation dropped; articles kept (word order is what is matched)."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return tuple(w for w in re.split(r"[^\w]+", plain) if w)


@dataclass
class LeakSource:
    """Everything the data could have been built from: a memory and, with a run, its dataset."""

    label: str
    ids: set[str] = field(default_factory=set)
    texts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "ids": len(self.ids), "texts": len(self.texts),
                "notes": self.notes}


def from_memory(location: str) -> LeakSource:
    """``--exclude-memory``: a memory directory, or an http(s) URL of a Chroma server."""
    is_url = location.startswith(("http://", "https://"))
    contents: MemoryContents = read_contents(url=location) if is_url else read_contents(path=location)
    return LeakSource(f"memory {contents.label} ({contents.items} items)", contents.ids,
                      contents.texts)


def from_run(run_dir: Path) -> LeakSource:
    """``--against RUN_DIR``: the run's memory (from its config.json) and its own questions."""
    run = open_run(run_dir)
    memory = run.config.get("memory") or {}
    path, url = memory.get("path"), memory.get("url")
    source = LeakSource(f"run {run.run_id}")
    if url:
        if is_redacted(url):
            raise UserInputError(f"{run.dir / 'config.json'}: memory.url had credentials, which "
                                 "are never stored; pass the URL with --exclude-memory")
        found = from_memory(url)
    elif path and path != ":memory:":
        found = from_memory(path)
    else:
        from caredio.memory.ingest import starter_pack

        # An ephemeral memory is gone with its run: what it held was the starter pack (if on)
        # and knowledge elicited from the model, which cannot carry dataset questions.
        starter = starter_pack() if memory.get("starter_pack", True) else []
        found = LeakSource("starter pack", {i.id for i in starter}, [i.text for i in starter])
        source.notes.append("the run's memory was ephemeral: checked the starter pack it "
                            "loaded and the run's own questions")
    source.label = f"run {run.run_id}: {found.label}"
    source.ids |= found.ids
    source.texts += found.texts
    source.texts += [question_response(line["messages"])[0] for line in run.dataset]
    source.texts += [v["question"] for v in run.trajectories]
    return source


def _index(phrases: dict[tuple[str, ...], set[str]]) -> dict[tuple[str, ...], list[tuple[str, ...]]]:
    index: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for phrase in phrases:
        index.setdefault(phrase[:KEY], []).append(phrase)
    return index


def find_leaks(files: list[CountryFile], source: LeakSource) -> dict[str, str]:
    """Question id -> "id" or "text" for every question of ``files`` that ``source`` holds.

    Text matching slides over each stored text once, looking up its next three words in an
    index of the questions' phrasings, so it stays linear in the memory's size.
    """
    leaks: dict[str, str] = {}
    phrases: dict[tuple[str, ...], set[str]] = {}
    for country_file in files:
        for qid, question in country_file.questions.items():
            if qid in source.ids:
                leaks[qid] = "id"
            for text in (question.question, question.en_question):
                words = plain_words(text)
                if len(words) >= MIN_WORDS:
                    phrases.setdefault(words, set()).add(qid)
    index = _index(phrases)
    for text in source.texts:
        words = plain_words(text)
        for start in range(len(words)):
            for phrase in index.get(words[start:start + KEY], ()):
                if words[start:start + len(phrase)] == phrase:
                    for qid in phrases[phrase]:
                        leaks.setdefault(qid, "text")
    return leaks


def excluded_pairs(files: list[CountryFile], countries: list[str],
                   leaks: dict[str, str]) -> list[dict[str, str]]:
    """One record per (country, question) left out, for ``excluded.jsonl``."""
    return [{"country": f.country, "question_id": qid, "matched_by": leaks[qid],
             "question": f.questions[qid].en_question}
            for f in files if f.country in countries for qid in f.questions if qid in leaks]


def dump(records: list[dict[str, str]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
