"""Grading a model's answer: BLEnD's soft match for short answers, the letter for multiple choice.

Short answer (as BLEnD's ``soft_exact_match`` for English): the reply is correct when it
contains one of the country's annotator answers. "Contains" is on normalized words: case and
accents folded, punctuation and articles dropped, simple plurals matched ("apples" = "apple",
"dishes" = "dish", "cookies" = "cookie"), and every word of the annotator answer must appear
in the reply (in any order). BLEnD lemmatizes with spaCy; the plural rule stands in for it
here so that grading needs no model download.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

ARTICLES = frozenset({"a", "an", "the"})
# Words that say nothing about an answer's content: two answers sharing only these do not
# "share a word" when multiple-choice distractors are checked against the correct answer.
FUNCTION_WORDS = ARTICLES | frozenset({"of", "and", "or", "with", "in", "on", "for", "to", "at",
                                       "by", "from", "s"})
LETTERS = "ABCD"


def words(text: str) -> list[str]:
    """Lower-case words without accents, punctuation or articles."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return [w for w in re.split(r"[^\w]+", plain) if w and w not in ARTICLES and w != "s"]


def forms(word: str) -> frozenset[str]:
    """The word and the singulars it may be a plural of (short words are left alone)."""
    found = {word}
    if len(word) >= 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        found.add(word[:-1])
        if word.endswith("es"):
            found.add(word[:-2])
        if word.endswith("ies"):
            found.add(word[:-3] + "y")
    return frozenset(found)


def _same_word(a: frozenset[str], b: frozenset[str]) -> bool:
    return bool(a & b)


def contains_answer(reply: str, answer: str) -> bool:
    """Every word of ``answer`` appears in ``reply`` (plural-insensitive); empty answers never do."""
    wanted = [forms(w) for w in words(answer)]
    if not wanted:
        return False
    have = [forms(w) for w in words(reply)]
    return all(any(_same_word(w, h) for h in have) for w in wanted)


def match_short_answer(reply: str, gold: list[str]) -> str | None:
    """The first annotator answer the reply contains, or None."""
    for answer in gold:
        if contains_answer(reply, answer):
            return answer
    return None


def share_a_word(a: str, b: str) -> bool:
    """Two answers overlap: one contains the other, or they share a content word.

    BLEnD's ``no_common_word`` test for multiple-choice distractors, on normalized words.
    """
    left, right = " ".join(words(a)), " ".join(words(b))
    if not left or not right or left in right or right in left:
        return True
    content_a = [forms(w) for w in words(a) if w not in FUNCTION_WORDS]
    content_b = [forms(w) for w in words(b) if w not in FUNCTION_WORDS]
    return any(_same_word(x, y) for x in content_a for y in content_b)


@dataclass(frozen=True)
class ChoiceParse:
    letter: str | None
    how: str  # "json", "letter", "option text", or "unparsed"


_JSON_CHOICE = re.compile(r"""answer_choice['"]?\s*:\s*['"]?\s*([^'"}\n]*)""", re.IGNORECASE)
# The letter must be a capital: "a banana" is an answer, not option A.
_LEAD_LETTER = re.compile(r"^\s*(?i:answer\s*(?:is)?\s*:?\s*)?\(?([A-D])(?:[).:\s]|$)")
_LONE_LETTER = re.compile(r"(?<![\w'])([A-D])(?![\w'])")


def parse_choice(reply: str, options: dict[str, str]) -> ChoiceParse:
    """The option letter a multiple-choice reply picks.

    Tried in order: BLEnD's requested JSON (``{"answer_choice": "B"}``, or the option's text
    in it), a reply that starts with the letter ("B", "B. rice", "(B)", "Answer: B"), a single
    standalone capital letter A-D, the text of exactly one option. A reply naming two letters
    ("A or B") picks none. Anything else is unparsed and
    graded wrong (BLEnD does the same).
    """
    found = _JSON_CHOICE.search(reply)
    if found:
        value = found.group(1).strip().strip("'\"").strip()
        letter = _letter_of(value, options)
        if letter:
            return ChoiceParse(letter, "json")
    try:
        payload = json.loads(reply.strip())
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("answer_choice"), str):
        letter = _letter_of(payload["answer_choice"], options)
        if letter:
            return ChoiceParse(letter, "json")
    lone = {m.group(1) for m in _LONE_LETTER.finditer(reply)} & set(options)
    lead = _LEAD_LETTER.match(reply)
    if lead and lead.group(1) in options and lone <= {lead.group(1)}:
        return ChoiceParse(lead.group(1), "letter")
    if len(lone) == 1:
        return ChoiceParse(lone.pop(), "letter")
    named = [letter for letter, text in options.items() if contains_answer(reply, text)]
    if len(named) == 1:
        return ChoiceParse(named[0], "option text")
    return ChoiceParse(None, "unparsed")


def _letter_of(value: str, options: dict[str, str]) -> str | None:
    match = re.match(r"^\(?([A-D])(?:[).:\s]|$)", value.strip(), re.IGNORECASE)
    if match and match.group(1).upper() in options:
        return match.group(1).upper()
    for letter, text in options.items():
        if words(text) and words(text) == words(value):
            return letter
    return None


def grade(item: dict[str, Any], reply: str) -> dict[str, Any]:
    """The fields of an answer line that say what the reply was taken to mean, and if it is right."""
    if item["task"] == "saq":
        matched = match_short_answer(reply, list(item["gold"]))
        return {"parsed": reply.strip(), "matched": matched, "correct": matched is not None}
    choice = parse_choice(reply, dict(item["options"]))
    return {"parsed": choice.letter, "parsed_by": choice.how,
            "correct": choice.letter is not None and choice.letter == item["answer"]}
