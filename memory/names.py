"""The names a culture goes by (country names, short forms, demonyms), to keep them out of scores.

An answer that says "In Japan, people bow" is attributed to Japan because the embedding of the
word "Japan" sits near Japanese knowledge, not because the answer shows cultural knowledge: a
scorer that let the name count would teach the loop to write the country's name. The scorers
therefore replace every known name of every culture with a neutral phrase before embedding.

The names come from the one table the agents' output checks use too
(``caredio/data/culture_names.json``, see :mod:`caredio.culture_names`): the cultures the project
ships or validates on and the most common others. A culture that is not in it is known by its
own name (and the simple demonym rule below), which catches the commonest case.
"""

from __future__ import annotations

import re
from functools import lru_cache

from caredio.culture_names import names_and_demonyms

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
def _pattern(cultures: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str] | None]:
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
    name_re, demonym_re = _pattern(tuple(sorted(set(cultures))))
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
    name_re, demonym_re = _pattern(tuple(sorted(set(cultures))))
    found = [m.group(0) for m in name_re.finditer(text)]
    if demonym_re is not None:
        found += [m.group(0) for m in demonym_re.finditer(text)]
    return found
