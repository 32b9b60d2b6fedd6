"""How a text names a culture: its names, demonyms and names in its own script.

A question or answer that names the culture it is about gives the answer away: a scorer
attributes "In Japan, we bow" to Japan because of the word (the embedding of "Japan" sits near
Japanese knowledge), and a model fine-tuned on it learns to say the word instead of the
culture. The agents' outputs are checked with :func:`named_in` (``caredio.agents.checks``),
and the scorer replaces every known name with a neutral phrase before embedding
(:func:`neutralize`). The one table is ``caredio/data/culture_names.json``: the cultures the
project ships or validates on and the most common others. A culture it does not list is known
by its own name (and the simple demonym rule of :func:`forms`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

# Whole words, case-sensitive (proper nouns: "Turkey" the country, not "turkey" the bird), with
# a plural or possessive ending ("Koreans", "Japan's"); "U.S." ends in a dot, so no \b there.
_WORD = r"(?<![\w.]){}(?:s|'s|’s)?(?![\w])"


@functools.cache
def _table() -> dict[str, dict[str, list[str]]]:
    text = resources.files("caredio").joinpath("data/culture_names.json").read_text(encoding="utf-8")
    return {name: forms for name, forms in json.loads(text).items() if not name.startswith("_")}


@functools.cache
def _entry(culture: str) -> dict[str, list[str]]:
    table = _table()
    if culture in table:
        return table[culture]
    by_lower = {name.lower(): forms for name, forms in table.items()}
    return by_lower.get(culture.lower(), {"names": [culture]})


def surface_forms(culture: str) -> tuple[str, ...]:
    """Every form that names ``culture``: its own name, listed names, demonyms, native names."""
    entry = _entry(culture)
    forms = [culture, *entry.get("names", []), *entry.get("demonyms", []), *entry.get("native", [])]
    return tuple(dict.fromkeys(f for f in forms if f))


def names_and_demonyms(culture: str) -> tuple[list[str], list[str]]:
    """(names, demonyms) of ``culture`` in Latin script, its own name first: what the scorer
    neutralizes (:func:`neutralize`) needs the two apart."""
    entry = _entry(culture)
    names = list(dict.fromkeys([culture, *entry.get("names", [])]))
    return names, list(dict.fromkeys(entry.get("demonyms", [])))


@functools.cache
def _pattern(forms: tuple[str, ...]) -> re.Pattern[str]:
    spaced = sorted((f for f in forms if f.isascii() or " " in f or _latin(f)), key=len, reverse=True)
    unspaced = sorted((f for f in forms if f not in spaced), key=len, reverse=True)
    parts = [_WORD.format(re.escape(f)) for f in spaced] + [re.escape(f) for f in unspaced]
    return re.compile("|".join(parts) or r"(?!)")


def _latin(form: str) -> bool:
    """Latin letters with accents ("México", "Éire") are still words with boundaries."""
    return all(ch.isascii() or "\u00c0" <= ch <= "\u024f" for ch in form)


def named_in(text: str, cultures: Iterable[str]) -> list[str]:
    """The forms naming any of ``cultures`` that occur in ``text``, in order of appearance."""
    forms = tuple(dict.fromkeys(f for culture in cultures for f in surface_forms(culture)))
    found = [m.group(0) for m in _pattern(forms).finditer(text)]
    return list(dict.fromkeys(found))


# -- taking names out of what the scorer embeds ---------------------------------------------

NEUTRAL_NAME = "the country"
NEUTRAL_DEMONYM = "local"


def forms(culture: str) -> tuple[list[str], list[str]]:
    """(names, demonyms) of a culture, its own name first; demonyms with their plurals."""
    names, demonyms = names_and_demonyms(culture)
    if not demonyms and culture.endswith("ia"):  # Colombia -> Colombian
        demonyms = [culture + "n"]
    # "Koreans" is a plural noun (read as "people" below); "Chinese" and "Dutch" have none.
    plurals = [d + "s" for d in demonyms if not d.endswith(("s", "ese", "sh", "ch"))]
    return names, list(dict.fromkeys([*demonyms, *plurals]))


@lru_cache(maxsize=256)
def _neutral_patterns(cultures: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str] | None]:
    names: set[str] = set()
    demonyms: set[str] = set()
    for culture in cultures:
        culture_names, culture_demonyms = forms(culture)
        names.update(culture_names)
        demonyms.update(culture_demonyms)

    def alternation(words: set[str]) -> str:
        # Longest first, so "South Korea" wins over "Korea"; edges that also allow "U.S.".
        ordered = sorted(words, key=len, reverse=True)
        return r"(?<![\w.])(?:[Tt]he\s+)?(?:" + "|".join(re.escape(w) for w in ordered) + r")(?![\w])"

    # Case-sensitive: names are proper nouns, and "turkey", "china" or "us" are not countries.
    name_re = re.compile(alternation(names) + r"(?:'s)?")
    demonym_re = re.compile(alternation(demonyms)) if demonyms else None
    return name_re, demonym_re


def neutralize(text: str, cultures: list[str] | tuple[str, ...]) -> str:
    """``text`` with every name and demonym of ``cultures`` taken out.

    "In Japan, people bow" becomes "people bow" (a name with its preposition is dropped, so the
    sentence embeds as the unnamed one does); any other mention becomes "the country", a plural
    demonym "people" and any other demonym "local".
    """
    if not text:
        return text
    name_re, demonym_re = _neutral_patterns(tuple(sorted(set(cultures))))
    # Demonyms first: "South Korean" must not become "the country an". A plural is a noun
    # ("Koreans eat"), anything else most often an adjective ("Korean food").
    if demonym_re is not None:
        text = demonym_re.sub(lambda m: "people" if m.group(0).endswith("s") else NEUTRAL_DEMONYM, text)
    text = re.sub(r"(?:^|(?<=[.!?]\s))\s*(?:[Ii]n|[Aa]cross|[Tt]hroughout)\s+" + name_re.pattern + r"\s*,?\s*",
                  "", text)
    text = re.sub(r"\s+(?:in|across|throughout|from)\s+" + name_re.pattern, "", text)
    return name_re.sub(NEUTRAL_NAME, text)


def mentions(text: str, cultures: list[str] | tuple[str, ...]) -> list[str]:
    """The names and demonyms of ``cultures`` that occur in ``text`` (as written there)."""
    name_re, demonym_re = _neutral_patterns(tuple(sorted(set(cultures))))
    found = [m.group(0) for m in name_re.finditer(text)]
    if demonym_re is not None:
        found += [m.group(0) for m in demonym_re.finditer(text)]
    return found
