"""The BLEnD importer: country names removed, weights = share of annotators, topics, stable ids,
malformed files refused whole, idempotent re-ingest into a real Chroma memory."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from caredio.errors import UserInputError
from caredio.memory.blend import country_names, read_blend, strip_country
from caredio.memory.store import CulturalMemory
from testing.blend import BLEND_DIR, blend_subset

COUNTRIES = ["US", "UK", "China", "South_Korea", "Indonesia", "Mexico", "Spain", "Iran", "Algeria",
             "Ethiopia"]


@pytest.mark.parametrize("country", COUNTRIES)
def test_no_item_names_its_country(country: str) -> None:
    items = read_blend(BLEND_DIR / f"{country}_data.json")
    culture = items[0].culture
    names = re.compile(r"(?<![\w.])(?:" + "|".join(re.escape(n) for n in country_names(culture, country))
                       + r")(?![\w])")
    leaks = [item.text for item in items if names.search(item.text)]
    assert not leaks, leaks[:5]
    assert len(items) > 1000
    assert all(0.0 < item.weight <= 1.0 and item.source == "blend" for item in items)
    assert all(" — " in item.text for item in items)


def test_canonical_cultures_and_topics() -> None:
    cultures = {read_blend(BLEND_DIR / f"{c}_data.json")[0].culture for c in ("US", "UK", "South_Korea")}
    assert cultures == {"United States", "United Kingdom", "South Korea"}
    topics = {item.topic for item in read_blend(BLEND_DIR / "UK_data.json")}
    assert topics == {"food_drink", "sports", "family", "education", "holidays_festivals", "work_life"}


def test_weights_are_shares_of_annotators() -> None:
    items = {item.text: item for item in read_blend(BLEND_DIR / "UK_data.json")}
    # Al-en-04: apple/apples 5 of 5 annotators, banana 2 of 5.
    assert items["What is the most popular fruit? — apple"].weight == 1.0
    assert items["What is the most popular fruit? — banana"].weight == pytest.approx(0.4)
    assert items["What is a popular food to go with beer? — crisps / potato crisps"].weight == pytest.approx(0.6)


@pytest.mark.parametrize(("question", "culture", "expected"), [
    ("In UK, who takes care of kids when both parents are working?", "United Kingdom",
     "Who takes care of kids when both parents are working?"),
    ("What is a popular food to go with beer in the UK?", "United Kingdom",
     "What is a popular food to go with beer?"),
    ("What is a common snack for preschool kids in South Korea?", "South Korea",
     "What is a common snack for preschool kids?"),
    ("What is US's most popular sport?", "United States", "What is the country's most popular sport?"),
    ("Which age's birthday is celebrated the most grandly in China's society?", "China",
     "Which age's birthday is celebrated the most grandly in the society?"),
    ("Which country is the biggest rival in soccer matches for the US?", "United States",
     "Which country is the biggest rival in soccer matches for the country?"),
    ("What is the most popular Korean dish in Korea?", "South Korea", "What is the most popular local dish?"),
])
def test_strip_country_forms(question: str, culture: str, expected: str) -> None:
    assert strip_country(question, culture) == expected


def test_ids_are_stable_and_reingest_adds_nothing(tmp_path: Path, embedder: Any) -> None:
    path = blend_subset(tmp_path, "Spain", 15)
    first, second = read_blend(path), read_blend(path)
    assert [i.id for i in first] == [i.id for i in second]
    memory = CulturalMemory.open(embedder)
    assert memory.add_knowledge(first) == len(first)
    assert memory.add_knowledge(second) == 0
    assert memory.count() == len(first)


def test_culture_override(tmp_path: Path) -> None:
    path = blend_subset(tmp_path, "UK", 5)
    assert {i.culture for i in read_blend(path, culture="England")} == {"England"}


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda d: d["Al-en-02"]["annotations"][0].__setitem__("count", "three"), "Al-en-02"),
    (lambda d: d["Al-en-04"].pop("en_question"), "en_question"),
    (lambda d: d["Al-en-01"].__setitem__("annotations", None), "annotations"),
])
def test_malformed_file_names_file_and_key(tmp_path: Path, mutate: Any, needle: str) -> None:
    data = json.loads((BLEND_DIR / "UK_data.json").read_text(encoding="utf-8"))
    data = dict(list(data.items())[:10])
    mutate(data)
    path = tmp_path / "UK_data.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(UserInputError, match=needle) as info:
        read_blend(path)
    assert str(path) in str(info.value)


def test_invalid_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "UK_data.json"
    path.write_text('{"Al-en-01": {\n"en_question": "x",\n oops}\n', encoding="utf-8")
    with pytest.raises(UserInputError, match=r"UK_data\.json:3"):
        read_blend(path)


def test_topics_are_found_in_the_blend_repository_layout(tmp_path: Path) -> None:
    """A clone of nlee0212/BLEnD keeps data/annotations/X_data.json apart from
    data/questions/X_questions.csv; the topics must still be read (not all 'general')."""
    (tmp_path / "annotations").mkdir()
    (tmp_path / "questions").mkdir()
    data = json.loads((BLEND_DIR / "UK_data.json").read_text(encoding="utf-8"))
    path = tmp_path / "annotations" / "UK_data.json"
    path.write_text(json.dumps(dict(list(data.items())[:40])), encoding="utf-8")
    shutil.copy(BLEND_DIR / "UK_questions.csv", tmp_path / "questions" / "UK_questions.csv")
    topics = {item.topic for item in read_blend(path)}
    assert topics and "general" not in topics and topics <= {
        "food_drink", "sports", "family", "education", "holidays_festivals", "work_life"}
