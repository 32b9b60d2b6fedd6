"""What an agent's reply must carry, checked while it is parsed.

A reply can parse and still be unusable: ``{"question": ""}``, a "question" that asks nothing
("The question you asked about South Korea's etiquette", a pasted knowledge statement), an
answer that names the culture it should show. Such a reply is a model-output problem like a
parse error: the field types below reject it during validation, the error is fed back to the
model and the turn re-asked (``caredio.llm.client``), and a turn that never gets a usable reply fails
its sample, so nothing unusable reaches dataset.jsonl.

Which cultures a text must not name comes from the pydantic validation context of the call
(:func:`question_rules`, :func:`answer_rules`), since it depends on the sample.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from caredio.culture_names import named_in, neutralize
from caredio.llm.structured import LAST_TRY, UNUSABLE

MIN_QUESTION_CHARS = 8  # letters and digits: "Why?" asks nothing a dataset can use
MIN_ANSWER_WORDS = 3  # "We" (seen from SmolLM2-135M as a whole rewrite) answers nothing
_LABEL = re.compile(r"^\s*(?:\*\*)?(?:question|q|answer|a|response)\s*[:：]\s*(?:\*\*)?\s*", re.IGNORECASE)
_CLOSERS = "\"'”’»)]} \t\n"
_QUOTES = ('"', "“", "'", "‘", "«")
_ENDS = (".", "!", "?", "。", "！", "？", ":", ";")
_AUX = r"(?:do|does|did|is|are|was|were|can|could|should|would|will|may|must|have|has)"
_SUBJECT = (r"(?:you|we|they|people|it|there|i|he|she|someone|anyone|one|guests|hosts|your|our|"
            r"their|a|an|the|this|that|these|those)")
# Shaped like a question, only without its mark: "How do you ...", "Which gift do ...", "Is it ...".
# Not "When visiting a home, bring ..." or "Do not point ...": statements keep being refused.
_ASKS = re.compile(rf"(?:(?:how|what|when|where|why|which|who|whose)\s+(?:\w+\s+)?{_AUX}"
                   rf"|{_AUX}\s+{_SUBJECT})\b[^,;]*$", re.IGNORECASE)


# A reply that fell back to bare text can be the model's JSON or schema echoed as prose
# ('Here is the corrected JSON: ```json {"properties": ...'), seen from SmolLM2-135M.
_MARKUP = re.compile(r"```|^\s*[\[{]|\{\s*\"\w+\"\s*:")


def _problem(reason: str) -> PydanticCustomError:
    return PydanticCustomError(UNUSABLE, "{reason}", {"reason": reason})


def _rules(info: ValidationInfo) -> dict[str, Any]:
    return info.context if isinstance(info.context, dict) else {}


def _unwrapped(value: str) -> str:
    """The text without a "Question:"/"Answer:" label or quotes around it all."""
    text = _LABEL.sub("", value.strip(), count=1).strip()
    if len(text) > 1 and text[0] in _QUOTES and text[-1] in "\"”'’»" and text.count(text[0]) <= 2:
        text = text[1:-1].strip()
    return text


def _not_naming(text: str, info: ValidationInfo, who: str) -> str:
    """``text`` if it names none of the cultures; else refused, to be re-asked with the reason.

    On the call's last try (``LAST_TRY`` in the context) the names are taken out instead, as
    the scorer does ("In Japan, we bow" -> "we bow"): a small model (SmolLM2-135M) names the
    country through every re-ask of a third of its answers, and the sample would be lost for a
    word. The trace keeps the refusals (``retry_reasons``) and the reply as written (``output``).
    """
    cultures = tuple(_rules(info).get("cultures", ()))
    names = named_in(text, cultures)
    if not names:
        return text
    if _rules(info).get(LAST_TRY):
        repaired = neutralize(text, cultures).strip()
        if repaired and not named_in(repaired, cultures):
            return repaired[0].upper() + repaired[1:]
    shown = ", ".join(f"'{n}'" for n in names)
    raise _problem(f"names {shown}; {who} must not name the culture, its people or its language")


def _text(value: str, info: ValidationInfo) -> str:
    text = value.strip()
    if not text:
        raise _problem("is empty")
    return text


def _question(value: str, info: ValidationInfo) -> str:
    text = _unwrapped(value)
    if not text:
        raise _problem("is empty; write the question")
    if _MARKUP.search(text):
        raise _problem("is JSON or code, not a question; write the question as plain text")
    if _ASKS.match(text) and not text.rstrip(_CLOSERS).endswith(_ENDS):
        text += "?"  # "How do you greet an elder" is a question that lost its mark
    if not text.rstrip(_CLOSERS).endswith(("?", "？")):
        raise _problem("is not a question: write one question that ends with '?'")
    if len(re.findall(r"\w", text)) < MIN_QUESTION_CHARS:
        raise _problem("is too short to be a question")
    return _not_naming(text, info, "the question")


def _answer(value: str, info: ValidationInfo) -> str:
    text = _unwrapped(value)
    if not text:
        raise _problem("is empty; write the answer")
    if _MARKUP.search(text):
        raise _problem("is JSON or code, not an answer; write the answer as plain sentences")
    question = str(_rules(info).get("question") or "")
    if question and _words(text) == _words(question):
        raise _problem("repeats the question instead of answering it")
    if len(_words(text)) < MIN_ANSWER_WORDS:
        raise _problem(f"is too short to be an answer (fewer than {MIN_ANSWER_WORDS} words)")
    sentences = [s for s in re.split(r"(?<=[.!?。！？])\s+", text) if s.strip()]
    if sentences and all(s.rstrip(_CLOSERS).endswith(("?", "？")) for s in sentences):
        raise _problem("asks questions instead of answering")
    return _not_naming(text, info, "the answer")


def _items(value: list[str], info: ValidationInfo) -> list[str]:
    return [item.strip() for item in value if item.strip()]


def _some_items(value: list[str], info: ValidationInfo) -> list[str]:
    items = _items(value, info)
    if not items:
        raise _problem("has no non-empty item")
    return items


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


Text = Annotated[str, AfterValidator(_text)]
"""Non-blank text (surrounding whitespace removed)."""
Question = Annotated[str, AfterValidator(_question)]
"""One question: ends with '?', asks something, names none of the context's cultures."""
Answer = Annotated[str, AfterValidator(_answer)]
"""An answer: non-blank, not the question again, names none of the context's cultures."""
Items = Annotated[list[str], AfterValidator(_items)]
"""A list of texts, blank ones dropped (may end up empty)."""
SomeItems = Annotated[list[str], AfterValidator(_some_items)]
"""A list of texts, blank ones dropped, at least one left."""


def question_rules(culture: str, others: Iterable[str] = ()) -> dict[str, Any]:
    """Validation context of a question about ``culture``: it names neither it nor ``others``
    (the related cultures it is contrasted with), as the templates ask."""
    return {"cultures": (culture, *others)}


def answer_rules(culture: str, question: str) -> dict[str, Any]:
    """Validation context of an insider's answer: it does not name ``culture`` and answers
    ``question`` rather than repeating it."""
    return {"cultures": (culture,), "question": question}
