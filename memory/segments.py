"""Responses as segments: the units the scorers attribute and match against knowledge.

A segment is a sentence, or one item of a sentence that is a list of short items. Segments are
de-duplicated before scoring, so saying the same thing twice never counts twice.
"""

from __future__ import annotations

import re

import numpy as np

# Not before a dash: "What do people eat at weddings? — injera" is one knowledge item (context —
# claim), and split at its "?" a pasted item would leave "— injera" too short to be seen as a copy.
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+(?![—–]\s)|\n+")
_LIST_SEP = re.compile(r"\s*[,;、，；]\s*")
_NOT_WORD = re.compile(r"[\W_]+")
LIST_ITEM_WORDS = 6
NEAR_DUPLICATE = 0.95  # cosine above which two segments say the same thing


def split_sentences(text: str) -> list[str]:
    parts = [p.strip() for p in _SENTENCE_END.split(text.strip())]
    return [p for p in parts if len(p) > 2] or ([text.strip()] if text.strip() else [])


def split_segments(text: str) -> list[str]:
    """Sentences, and a sentence that is a list of short items split into its items.

    One embedding of "kimchi, bulgogi, soju." blurs three claims into one vector that is close
    to no knowledge item; three embeddings each find their own evidence. Only lists of short
    items (at most ``LIST_ITEM_WORDS`` words each) are split, so ordinary prose stays whole.
    """
    segments: list[str] = []
    for sentence in split_sentences(text):
        parts = [p.strip(" .!?") for p in _LIST_SEP.split(sentence)]
        parts = [p for p in parts if p]
        if len(parts) > 1 and all(len(p.split()) <= LIST_ITEM_WORDS for p in parts):
            segments += parts
        else:
            segments.append(sentence)
    return segments


# What is left of "In Japan," or "Japanese people" once names are neutralized (memory/names.py):
# such a segment says nothing and must not vote.
_EMPTY_WORDS = frozenset([
    "the", "a", "an", "in", "at", "on", "of", "for", "to", "and", "or", "by", "with", "from",
    "country", "local", "people", "person", "folks", "here", "there",
])


def repeat_key(segment: str) -> str:
    """What two segments share when one repeats the other: words, case and punctuation aside."""
    return _NOT_WORD.sub(" ", segment.lower()).strip()


def unique_segments(segments: list[str]) -> list[str]:
    """Segments without repeats (case, spacing and punctuation ignored), first one kept, and
    without segments made only of function words and neutralized names."""
    seen: set[str] = set()
    kept = []
    for segment in segments:
        key = repeat_key(segment)
        if not set(key.split()) - _EMPTY_WORDS:
            continue
        if key not in seen:
            seen.add(key)
            kept.append(segment)
    return kept


def distinct_rows(vectors: np.ndarray) -> np.ndarray:
    """Indices of the rows that are not near-duplicates of an earlier row."""
    keep: list[int] = []
    for row in range(len(vectors)):
        if not keep or float((vectors[keep] @ vectors[row]).max()) < NEAR_DUPLICATE:
            keep.append(row)
    return np.asarray(keep, dtype=int)


def _trigrams(text: str) -> set[tuple[str, ...]]:
    words = _NOT_WORD.sub(" ", text.lower()).split()
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


# A segment this short that matches a shown item is that item's bare claim ("Bread of the
# dead"): stating a fact in its one usual wording is answering, not pasting the prompt (the item
# itself is still held out of the evidence). Measured on BLEnD's validation split: at 5, honest
# answers that state a shown claim keep their credit and no copy wins; at 7 some of the starter
# pack's short sentences pasted whole went unseen (docs/scorers.md).
COPY_MIN_WORDS = 5


def copied_from(segments: list[str], sources: list[str], share: float = 0.5) -> np.ndarray:
    """Whether each segment repeats ``sources`` word for word: at least ``share`` of its word
    trigrams occur in them (in any of them: pasted items run together where a claim has no full
    stop). Segments under ``COPY_MIN_WORDS`` words are never copies."""
    source_grams = set().union(*(_trigrams(source) for source in sources))
    flags = []
    for segment in segments:
        grams = _trigrams(segment)
        long_enough = len(grams) + 2 >= COPY_MIN_WORDS
        flags.append(long_enough and len(grams & source_grams) >= share * len(grams))
    return np.asarray(flags, dtype=bool)
