"""Reading knowledge files into items: generic JSONL and CSV, and the packaged starter pack.

A file is read and validated whole before anything is written to memory, so a malformed line
(reported with its file and line number) leaves the memory as it was.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from caredio.errors import UserInputError
from caredio.memory.items import CLAIM_SEPARATOR, KnowledgeItem, canonical_culture, stable_id

# The split of "question? answer" knowledge (see ``question_answer``): words a question opens
# with, and the prepositions that may come before a wh-word ("At what age ...", "In which ...").
_WH = frozenset({"what", "which", "who", "whom", "whose", "when", "where", "why", "how"})
_ASKING = _WH | {"is", "are", "was", "were", "do", "does", "did", "can", "could", "should", "would",
                 "will", "has", "have"}
_LEADING = frozenset({"in", "at", "on", "from", "for", "during", "to", "with", "by", "among",
                      "after", "before", "except"})
# The question up to its only "?" (plus a parenthesized instruction after it, as BLEnD's
# "(Provide Arabic numerals (e.g., 12) only.)"), whitespace, then an answer without a "?".
_QUESTION_ANSWER = re.compile(r"^(?P<question>[^?]+\?(?:\s+\([^?]*\))?)\s+(?P<answer>[^?]+)$")


def _opens_a_question(words: list[str]) -> bool:
    """A question word first, or a preposition and then a wh-word ("At what age ...")."""
    lowered = [word.lower() for word in words[:2]]
    return bool(lowered) and (lowered[0] in _ASKING or (
        lowered[0] in _LEADING and len(lowered) > 1 and lowered[1] in _WH))


def _asks(question: str) -> bool:
    if _opens_a_question(question.split()):
        return True
    # "In your country, what ...", "On average, how ...": a short opening phrase, then the question
    opening, comma, rest = question.partition(",")
    return bool(comma) and len(opening.split()) <= 8 and _opens_a_question(rest.split())


def question_answer(text: str) -> str | None:
    """``text`` written "context — claim" when it is clearly a question and its answer, else None.

    "What is the most popular fruit in your country? mango" is embedded as a whole that the
    question dominates, so a response saying "mango" is far from it and attribution falls
    towards chance; as "... country? — mango" the store keeps the answer as the item's claim,
    matched on its own (``claim_of`` in memory/store.py), as the BLEnD importer's items are.
    Conservative: one "?" only, no sentence before it ("Tea matters. Why? ..." stays), the
    question opens like one (a question word, or a preposition or short phrase and then one),
    a space after the "?" (so a quoted "'How are you?' is ..." stays) and a non-empty answer.
    """
    if CLAIM_SEPARATOR in text:
        return None  # already context — claim
    match = _QUESTION_ANSWER.match(text)
    if match is None:
        return None
    question, answer = match["question"].strip(), match["answer"].strip().lstrip("-–—:").strip()
    asked = question[: question.index("?")]
    # A sentence before the question ends in ". "; "(e.g. Monday)" does not count as one.
    if not answer or re.search(r"[.!]\s", re.sub(r"\([^)]*\)", "", asked)) or not _asks(asked):
        return None
    return f"{question}{CLAIM_SEPARATOR}{answer}"


def _item(record: dict[str, Any], where: str, culture: str | None, source: str) -> KnowledgeItem:
    if not isinstance(record, dict):
        raise UserInputError(f"{where}: expected a JSON object")
    name = culture or record.get("culture")
    if not isinstance(name, str) or not name.strip():
        raise UserInputError(f"{where}: field 'culture' is missing (or pass --culture)")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise UserInputError(f"{where}: field 'text' is missing or empty")
    weight_value = record.get("weight", 1.0)
    try:
        weight = float(weight_value if weight_value not in (None, "") else 1.0)
    except (TypeError, ValueError):
        raise UserInputError(f"{where}: field 'weight' is not a number: {weight_value!r}") from None
    if not 0.0 < weight <= 1.0:
        raise UserInputError(f"{where}: field 'weight' must be in (0, 1], got {weight}")
    topic = str(record.get("topic") or "general")
    text = " ".join(text.split())
    split = question_answer(text) if source != "starter" else None
    # The id stays that of the text as written: re-ingesting a file adds nothing twice, also
    # into a memory made before such text was split.
    item_id = str(record.get("id") or "") or stable_id(canonical_culture(name), topic, text)
    return KnowledgeItem(
        culture=canonical_culture(name), text=split or text, topic=topic,
        weight=weight, source=str(record.get("source") or source), id=item_id,
    )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open(encoding="utf-8") as handle:
            yield from enumerate(handle, start=1)
    except FileNotFoundError:
        raise UserInputError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read: {exc.strerror}") from None


def read_jsonl(path: str | Path, culture: str | None = None, source: str = "user") -> list[KnowledgeItem]:
    path = Path(path)
    items = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
        items.append(_item(record, f"{path}:{number}", culture, source))
    if not items:
        raise UserInputError(f"{path}: no knowledge items in the file")
    return items


def _quote_opened(lines: list[str], start: int) -> int:
    """The line (1-based) where the quoted field still open at the end of ``lines`` opened,
    reading from line ``start`` (where a record begins), as the csv module's default dialect
    quotes: a field that starts with '"' runs to the next '"' not doubled."""
    opened, quoted, field_start = start, False, True
    for number in range(start, len(lines) + 1):
        line, index = lines[number - 1], 0
        while index < len(line):
            char = line[index]
            if quoted:
                if char == '"' and line[index + 1 : index + 2] == '"':
                    index += 1  # an escaped quote inside the field
                elif char == '"':
                    quoted, field_start = False, False
            elif char == '"' and field_start:
                quoted, opened = True, number
            else:
                field_start = char in ",\r\n"
            index += 1
    return opened


def read_csv(path: str | Path, culture: str | None = None, source: str = "user") -> list[KnowledgeItem]:
    """CSV with a header row naming at least ``text`` (and ``culture`` unless --culture).

    Read strictly: a quote left open would otherwise make the rest of the file one field of
    one item, ingested as a success.
    """
    path = Path(path)
    lines = [line for _, line in _lines(path)]
    consumed = 0  # lines the reader has taken so far: where the next record begins

    def counted() -> Iterator[str]:
        nonlocal consumed
        for line in lines:
            consumed += 1
            yield line

    reader = csv.DictReader(counted(), strict=True)
    items = []
    record_start = 1
    try:
        if not reader.fieldnames or "text" not in reader.fieldnames:
            raise UserInputError(f"{path}:1: the header needs a 'text' column")
        record_start = consumed + 1
        for record in reader:
            items.append(_item(dict(record), f"{path}:{reader.line_num}", culture, source))
            record_start = consumed + 1
    except csv.Error as exc:
        while record_start < len(lines) and not lines[record_start - 1].strip():
            record_start += 1  # blank lines between records belong to none
        if consumed >= len(lines) and "unexpected end of data" in str(exc):
            raise UserInputError(f"{path}: line {_quote_opened(lines, record_start)}: unterminated "
                                 "quote (the field runs to the end of the file)") from None
        where = (f" (the record begins on line {record_start}: is a quote left open there?)"
                 if record_start < consumed else "")
        raise UserInputError(f"{path}: line {consumed}: malformed CSV: {exc}{where}") from None
    if not items:
        raise UserInputError(f"{path}: no knowledge items in the file")
    return items


def starter_pack() -> list[KnowledgeItem]:
    """The knowledge pack shipped with the package for the demo cultures."""
    text = resources.files("caredio.memory").joinpath("data/starter_knowledge.jsonl").read_text(
        encoding="utf-8"
    )
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            items.append(_item(json.loads(line), f"starter_knowledge.jsonl:{number}", None, "starter"))
    return items


def read_knowledge(path: str | Path, fmt: str | None = None, culture: str | None = None) -> list[KnowledgeItem]:
    """Dispatch on ``fmt`` (or the file extension)."""
    path = Path(path)
    fmt = fmt or {".jsonl": "jsonl", ".csv": "csv", ".json": "blend"}.get(path.suffix.lower())
    if fmt == "jsonl":
        return read_jsonl(path, culture)
    if fmt == "csv":
        return read_csv(path, culture)
    if fmt == "blend":
        from caredio.memory.blend import read_blend

        return read_blend(path, culture)
    raise UserInputError(f"{path}: unknown format {fmt!r} (use --format jsonl, csv or blend)")
