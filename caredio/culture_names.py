"""How a text names a culture: its names, demonyms and names in its own script.

A question or answer that names the culture it is about gives the answer away: a scorer
attributes "In Japan, we bow" to Japan because of the word, and a model fine-tuned on it
learns to say the word instead of the culture. The agents' outputs are checked with
:func:`named_in` (see ``caredio.agents.checks``), and the scorer takes the same names out of
what it embeds (``caredio.memory.names``). The one table is ``caredio/data/culture_names.json``;
a culture it does not list is matched by its own name only.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
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
    neutralizes (``caredio.memory.names``) needs the two apart."""
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
