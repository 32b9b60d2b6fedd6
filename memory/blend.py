"""Importer for BLEnD (Myung et al., NeurIPS 2024; CC BY-SA 4.0) ``{Country}_data.json`` files.

Each annotation of a question becomes one knowledge item: the English question with the
country named in it removed, then the English answer ("What is a popular food to go with
beer? — crisps / potato crisps"). The country has to go: the English questions name it, and a
scorer fed "... in UK? — crisps" would learn to match the string "UK" instead of the culture.

``weight`` is the answer's share of the question's annotators — BLEnD's human measure of
consensus, which the representativeness scorer uses. BLEnD asks ~5 annotators per question
and each may give several answers, so the counts of one question can sum to more than 5; the
denominator is therefore the number of annotators (5, or the largest count if one is larger),
not the sum of counts.

The whole file (and its sibling ``{Country}_questions.csv`` for topics) is read and checked
before any item is returned, so a malformed file never leaves a half-ingested memory.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caredio.errors import UserInputError
from caredio.memory.items import KnowledgeItem, canonical_culture, stable_id

SOURCE = "blend"
ANNOTATORS = 5  # BLEnD collects five native annotators' answers per question

TOPICS = {
    "food": "food_drink",
    "sport": "sports",
    "family": "family",
    "education": "education",
    "holidays/celebration/leisure": "holidays_festivals",
    "work life": "work_life",
}

# Every way a country is named in BLEnD's English questions and answers, beyond its canonical
# name and file stem. Demonyms ("Korean") are removed from questions only: in an answer
# ("Spanish omelette") they are part of the knowledge itself.
NAMES: dict[str, tuple[str, ...]] = {
    "United States": ("the United States of America", "the United States", "United States",
                      "the USA", "USA", "the US", "US", "U.S.", "America"),
    "United Kingdom": ("the United Kingdom", "United Kingdom", "the UK", "UK", "Great Britain",
                       "Britain"),
    "South Korea": ("the Republic of Korea", "South Korea", "Korea"),
}
DEMONYMS: dict[str, tuple[str, ...]] = {
    "United States": ("American",), "United Kingdom": ("British",), "South Korea": ("Korean",),
    "China": ("Chinese",), "Iran": ("Iranian", "Persian"), "Spain": ("Spanish",),
    "Mexico": ("Mexican",), "Algeria": ("Algerian",), "Ethiopia": ("Ethiopian",),
    "Indonesia": ("Indonesian",),
}


def country_names(culture: str, stem: str = "") -> list[str]:
    """Surface forms of a country's name, longest first so 'the UK' goes before 'UK'."""
    forms = {culture, stem.replace("_", " "), *NAMES.get(culture, ())}
    return sorted((f for f in forms if f), key=len, reverse=True)


def _name_pattern(forms: list[str]) -> str:
    # (?<![\w.]) / (?![\w]) instead of \b so that "U.S." matches as a whole.
    return "(?:" + "|".join(re.escape(f) for f in forms) + ")"


def strip_country(question: str, culture: str, stem: str = "") -> str:
    """The question with its country removed, still readable.

    Handles the forms in the data: "In UK, who ...", "... in the UK?", "... in UK's society?",
    "... for US?", "... has Iran won ...", "... education Iran?", and demonyms.
    """
    name = _name_pattern(country_names(culture, stem))
    bound_l, bound_r = r"(?<![\w.])", r"(?![\w])"
    text = question
    # "In UK, who takes care ..." -> "Who takes care ..."
    text = re.sub(rf"^\s*(?:In|in)\s+{bound_l}{name}{bound_r}\s*,\s*(\w)",
                  lambda m: m.group(1).upper(), text)
    # "UK's society" -> "the society"; "US's most" -> "the country's most"
    text = re.sub(rf"{bound_l}{name}'s\s+society", "the society", text)
    text = re.sub(rf"{bound_l}{name}'s", "the country's", text)
    # "... in the UK?", "... from US to", "... among people in Iran" -> dropped
    text = re.sub(rf"\s+(?:in|within|across|throughout)\s+{bound_l}{name}{bound_r}", "", text)
    # Any other mention ("for US?", "has Iran won", "education Iran?") -> "the country"
    text = re.sub(rf"(?:\bthe\s+)?{bound_l}{name}{bound_r}", "the country", text)
    demonyms = DEMONYMS.get(culture, ())
    if demonyms:
        text = re.sub(rf"\b(?:{'|'.join(demonyms)})\b", "local", text)
    return " ".join(text.split()).replace(" ?", "?").replace(" ,", ",")


def strip_country_answer(answer: str, culture: str, stem: str = "") -> str:
    """Country names (not demonyms) out of an answer: 'USA vs MEX' -> 'the country vs MEX'."""
    name = _name_pattern(country_names(culture, stem))
    return " ".join(re.sub(rf"(?<![\w.]){name}(?![\w])", "the country", answer).split())


def answer_text(variants: list[str]) -> str:
    """One answer's English variants, without repeats ('apple', 'apples' -> 'apple')."""
    kept: list[str] = []
    for variant in variants:
        clean = " ".join(str(variant).split())
        key = clean.lower().rstrip("s")
        if clean and all(key != k.lower().rstrip("s") for k in kept):
            kept.append(clean)
    return " / ".join(kept)


def _topics(path: Path) -> dict[str, str]:
    """Question id -> CAReDiO topic, from the sibling questions CSV (empty if there is none)."""
    if not path.exists():
        return {}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"ID", "Topic"} <= set(reader.fieldnames):
                raise UserInputError(f"{path}:1: the header needs 'ID' and 'Topic' columns")
            topics = {}
            for row in reader:
                raw = (row.get("Topic") or "").strip()
                topic = TOPICS.get(raw.lower())
                if topic is None:
                    raise UserInputError(f"{path}:{reader.line_num}: unknown BLEnD topic {raw!r}")
                topics[str(row["ID"]).strip()] = topic
            return topics
    except UnicodeDecodeError:
        raise UserInputError(f"{path}: not UTF-8 text") from None


def questions_csv(path: Path, stem: str) -> Path:
    """The topics file of ``{stem}_data.json``: beside it, or in the BLEnD repository's layout
    (``data/annotations/X_data.json`` and ``data/questions/X_questions.csv``)."""
    beside = path.with_name(f"{stem}_questions.csv")
    in_repository = path.parent.parent / "questions" / f"{stem}_questions.csv"
    return in_repository if not beside.exists() and in_repository.exists() else beside


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise UserInputError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not data:
        raise UserInputError(f"{path}: expected a JSON object keyed by question id")
    return data


def culture_from_path(path: Path) -> str:
    stem = path.name.removesuffix("_data.json") if path.name.endswith("_data.json") else path.stem
    return canonical_culture(stem)


@dataclass
class BlendAnswer:
    """One distinct English answer to a question, with its annotator count and raw variants."""

    text: str
    count: int
    variants: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)  # the same answer in the annotators' language


@dataclass
class BlendQuestion:
    """One question of one country: the cleaned question and its answers (most votes first)."""

    qid: str
    culture: str
    topic: str
    question: str
    annotators: int
    answers: list[BlendAnswer]
    en_question: str = ""  # as in the file, country named: what an evaluation asks
    idks: dict[str, int] = field(default_factory=dict)  # "idk", "no-answer", "not-applicable"

    @property
    def local_answers(self) -> list[str]:
        """The first own-language form of each answer, most votes first."""
        return [answer.local[0] for answer in self.answers if answer.local]


def read_blend_questions(path: str | Path, culture: str | None = None) -> list[BlendQuestion]:
    """The file's questions with country names removed; the whole file is checked first."""
    path = Path(path)
    stem = path.name.removesuffix("_data.json")
    name = canonical_culture(culture) if culture else culture_from_path(path)
    data = _load(path)
    topics = _topics(questions_csv(path, stem))
    questions: list[BlendQuestion] = []
    for qid, entry in data.items():
        where = f"{path}: question {qid!r}"
        if not isinstance(entry, dict):
            raise UserInputError(f"{where}: expected an object")
        question = entry.get("en_question")
        annotations = entry.get("annotations")
        if not isinstance(question, str) or not question.strip():
            raise UserInputError(f"{where}: field 'en_question' is missing or empty")
        if not isinstance(annotations, list):
            raise UserInputError(f"{where}: field 'annotations' is missing or not a list")
        counts = []
        for number, note in enumerate(annotations):
            count = note.get("count") if isinstance(note, dict) else None
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise UserInputError(
                    f"{where}: annotations[{number}].count is not a positive integer")
            if not isinstance(note.get("en_answers"), list):
                raise UserInputError(f"{where}: annotations[{number}].en_answers is not a list")
            counts.append(count)
        # Two local answers can share one English translation: one answer, counts summed.
        merged: dict[str, BlendAnswer] = {}
        for note in annotations:
            answer = strip_country_answer(answer_text(note["en_answers"]), name, stem)
            if not answer:
                continue  # an annotation with no English answer carries nothing to match
            slot = merged.setdefault(answer.lower(), BlendAnswer(answer, 0))
            slot.count += note["count"]
            slot.variants += [str(v) for v in note["en_answers"]]
            slot.local += [str(v) for v in note.get("answers") or [] if str(v).strip()]
        idks = entry.get("idks") or {}
        if not isinstance(idks, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in idks.values()):
            raise UserInputError(f"{where}: field 'idks' is not an object of counts")
        questions.append(BlendQuestion(
            qid=str(qid), culture=name, topic=topics.get(str(qid), "general"),
            question=strip_country(question, name, stem), annotators=max([ANNOTATORS, *counts]),
            answers=sorted(merged.values(), key=lambda a: -a.count),
            en_question=" ".join(question.split()), idks={str(k): v for k, v in idks.items()},
        ))
    return questions


def items_of(question: BlendQuestion) -> list[KnowledgeItem]:
    """Knowledge items of one question: one per answer, weight = share of annotators."""
    return [
        KnowledgeItem(
            culture=question.culture, text=f"{question.question} — {answer.text}",
            topic=question.topic, weight=min(1.0, answer.count / question.annotators),
            source=SOURCE,
            id=stable_id(SOURCE, question.culture, question.qid, answer.text.lower()),
            question_id=question.qid,
        )
        for answer in question.answers
    ]


def read_blend(path: str | Path, culture: str | None = None) -> list[KnowledgeItem]:
    """All annotations of one BLEnD country file as knowledge items (see the module docstring)."""
    questions = read_blend_questions(path, culture)
    items = [item for question in questions for item in items_of(question)]
    if not items:
        raise UserInputError(f"{path}: no annotations with English answers in the file")
    return items
