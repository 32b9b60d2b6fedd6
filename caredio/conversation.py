"""The one rule for what a conversation's (question, response) is, and its text for embedding.

A dataset line (this project's or another's) may carry a system message and several turns.
The sample is its last exchange: the last assistant message and the user message before it.
Selection, memory's accepted samples, scoring and export all use this rule, so a sample has
the same text — and the same embedding — wherever it is compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def question_response(messages: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The last assistant message and the user message before it ("" where there is none)."""
    turns = list(messages)
    answer_at = next((i for i in range(len(turns) - 1, -1, -1)
                      if turns[i].get("role") == "assistant"), None)
    if answer_at is None:
        asked = next((m for m in reversed(turns) if m.get("role") == "user"), None)
        return _content(asked), ""
    asked = next((m for m in reversed(turns[:answer_at]) if m.get("role") == "user"), None)
    return _content(asked), _content(turns[answer_at])


def sample_text(question: str, response: str) -> str:
    """What is embedded to compare whole samples (near-duplicates, diversity)."""
    return f"{question}\n{response}"


def line_text(line: Mapping[str, Any]) -> str:
    """:func:`sample_text` of a dataset line."""
    return sample_text(*question_response(line["messages"]))


def _content(message: Mapping[str, Any] | None) -> str:
    content = message.get("content") if message else ""
    return content if isinstance(content, str) else ""
