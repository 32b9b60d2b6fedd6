"""Values that conform to a JSON schema, for the FAKE server in ``stub_server`` (tests only).

Filler text, not data: it exists so the stub can answer any structured-output request with
something the client's validation accepts.
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path
from typing import Any

_WORDS = ("families", "food", "festivals", "elders", "neighbours", "work", "language", "music",
          "faith", "travel", "markets", "weddings", "schools", "harvests", "greetings", "meals")
_MAX_DEPTH = 8  # past this, prefer null / minimal values so recursive schemas terminate
_FORMATS = {"date-time": "2024-01-01T00:00:00Z", "date": "2024-01-01", "time": "12:00:00",
            "email": "stub@example.com", "uri": "https://example.com/stub",
            "uuid": "00000000-0000-4000-8000-000000000000"}


def _filler(rng: random.Random, min_len: int = 0, max_len: int | None = None) -> str:
    a, b = rng.sample(_WORDS, 2)
    text = f"Stub answer about {a} and {b}."
    while len(text) < min_len:
        text += f" Stub detail about {rng.choice(_WORDS)}."
    text = text if max_len is None else text[:max_len]
    return text.rstrip() if len(text.rstrip()) >= min_len else text


_VOCABULARY: list[str] = []


def _vocabulary() -> list[str]:
    """Every lower-case word of the starter pack (~1,500): realistic token lengths, no repeats
    to cache, and no proper nouns (a culture's name would be refused by the output checks)."""
    if not _VOCABULARY:
        path = Path(__file__).resolve().parents[1] / "memory" / "data" / "starter_knowledge.jsonl"
        words = {w for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
                 for w in re.findall(r"\b[a-z]{2,}(?:'[a-z]+)?\b", json.loads(line)["text"])}
        _VOCABULARY.extend(sorted(words))
    return _VOCABULARY


def varied_text(rng: random.Random, sentences: int = 0) -> str:
    """1-4 sentences of 8-16 random words: text that never repeats, so no embedding cache hits
    (the 16-word filler above makes most of a benchmark's embeddings cache hits)."""
    words = _vocabulary()
    out = []
    for _ in range(sentences or rng.randint(1, 4)):
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(8, 16)))
        out.append(sentence[0].upper() + sentence[1:] + ".")
    return " ".join(out)


def varied(value: Any, rng: random.Random, key: str = "") -> Any:
    """``value`` with every string replaced by :func:`varied_text` (enums would not validate,
    so a string from a schema's enum should not pass through here; ours have none). A string
    under a key named like a question becomes one sentence ending with '?', as the client's
    output checks require."""
    if isinstance(value, str):
        if "question" in key:
            return varied_text(rng, 1)[:-1] + "?"
        return varied_text(rng)
    if isinstance(value, list):
        return [varied(v, rng, key) for v in value]
    if isinstance(value, dict):
        return {k: varied(v, rng, k) for k, v in value.items()}
    return value


def _question(rng: random.Random) -> str:
    # The number keeps a rewrite from repeating the question it rewrites (1 in 240 with the two
    # words alone): an unchanged question reuses its contrast answers, so tests that count a
    # loop's calls saw two fewer whenever the words repeated.
    a, b = rng.sample(_WORDS, 2)
    return f"Stub question {rng.randint(100, 999)}: how do people treat {a} and {b}?"


def _is_question(name: str, schema: Any, root: dict[str, Any]) -> bool:
    """A string property named like a question gets a question (the client checks it is one)."""
    return "question" in name and isinstance(schema, dict) and _resolve(schema, root).get("type") == "string"


def example_from_schema(schema: dict[str, Any], rng: random.Random) -> Any:
    """A value conforming to `schema` (the subset Pydantic v2 emits), with rng-varied filler.

    Not honoured: string `pattern`, `multipleOf`, `not`, `if/then/else`, `patternProperties`.
    """
    return _gen(schema, rng, schema, 0)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s ("#/$defs/X", "#/definitions/X"); sibling keys override."""
    while "$ref" in schema:
        node: Any = root
        for part in [p for p in schema["$ref"].lstrip("#/").split("/") if p]:  # "#" = root
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _gen(schema: Any, rng: random.Random, root: dict[str, Any], depth: int) -> Any:
    if not isinstance(schema, dict):  # `true` accepts anything
        return _filler(rng)
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    if "allOf" in schema:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for sub in [_resolve(s, root) for s in schema["allOf"]]:
            joined = {**merged.get("properties", {}), **sub.get("properties", {})}
            merged.update({k: v for k, v in sub.items() if k != "required"})
            merged["properties"] = joined
        if not merged["properties"]:
            del merged["properties"]
        return _gen(merged, rng, root, depth)
    for key in ("anyOf", "oneOf"):
        if key in schema:  # first non-null branch; null once deep, so recursion terminates
            options = [_resolve(o, root) for o in schema[key]]
            non_null = [o for o in options if o.get("type") != "null"]
            if non_null and (depth < _MAX_DEPTH or len(non_null) == len(options)):
                return _gen(non_null[0], rng, root, depth + 1)
            return None
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if not kinds or (depth >= _MAX_DEPTH and "null" in kind):
            return None
        kind = kinds[0]
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props: dict[str, Any] = schema.get("properties") or {}
        if depth >= _MAX_DEPTH:
            props = {k: v for k, v in props.items() if k in schema.get("required", ())}
        out = {name: _question(rng) if _is_question(name, sub, root) else _gen(sub, rng, root, depth + 1)
               for name, sub in props.items()}
        extra = schema.get("additionalProperties", True)
        if not schema.get("properties") and extra is not False:  # dict[str, X]: two keys
            for i in range(max(2, schema.get("minProperties", 0))):
                out[f"{rng.choice(_WORDS)}_{i + 1}"] = _gen(extra, rng, root, depth + 1)
        return out
    if kind == "array":
        if "prefixItems" in schema:
            return [_gen(s, rng, root, depth + 1) for s in schema["prefixItems"]]
        cap = schema.get("maxItems", 2)
        n = max(schema.get("minItems", 0), min(2 if depth < _MAX_DEPTH else 0, cap))
        items: list[Any] = []
        seen: set[str] = set()
        for _ in range(n * 5):
            value = _gen(schema.get("items", {"type": "string"}), rng, root, depth + 1)
            key = json.dumps(value, sort_keys=True)
            if not (schema.get("uniqueItems") and key in seen):
                seen.add(key)
                items.append(value)
            if len(items) >= n:
                break
        return items
    if kind == "string":
        if schema.get("format") in _FORMATS:
            return _FORMATS[schema["format"]]
        return _filler(rng, schema.get("minLength", 0), schema.get("maxLength"))
    if kind in ("integer", "number"):
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        hi = schema.get("maximum", schema.get("exclusiveMaximum"))
        lo = (0 if hi is None else min(0, hi - 10)) if lo is None else lo
        hi = lo + 10 if hi is None else hi
        if kind == "number":
            return round(lo + (hi - lo) * (0.1 + 0.8 * rng.random()), 3)  # strictly inside
        ilo, ihi = math.ceil(lo), math.floor(hi)
        ilo += ilo == schema.get("exclusiveMinimum")
        ihi -= ihi == schema.get("exclusiveMaximum")
        return rng.randint(ilo, max(ilo, ihi))
    if kind == "boolean":
        return rng.random() < 0.5
    return None
