"""Scoring rules of `caredio eval` on small fixtures: normalization, short-answer matching,
multiple-choice parsing and construction, leakage exclusion, bootstrap intervals.

The leakage tests store items in a real (ephemeral or on-disk) Chroma memory; the vectors come
from the FAKE HashEmbedder, since the check reads only ids and texts, never embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caredio.errors import UserInputError
from caredio.evaluation import leakage
from caredio.evaluation.grading import contains_answer, grade, match_short_answer, parse_choice, share_a_word
from caredio.evaluation.tasks import build_items, eval_templates, pick_countries, read_files
from caredio.memory.blend import read_blend
from caredio.memory.items import KnowledgeItem
from caredio.memory.store import CulturalMemory
from caredio.stats import bootstrap_mean, paired_difference
from testing.eval_fixtures import blend_entry, snack_files, write_blend
from testing.jobs import HashEmbedder

# -- normalization and short answers -----------------------------------------------------------


@pytest.mark.parametrize(("reply", "answer"), [
    ("Apples.", "apple"),                 # case, punctuation, plural
    ("the crisps", "Crisps"),             # article
    ("Dishes of the day", "dish"),        # -es plural
    ("Cookies and milk", "cookie"),       # -ies plural
    ("A café on the corner", "cafe"),     # accents
    ("chips and fish", "fish and chips"),  # every word, any order
    ("McDonald's, of course", "mcdonald's"),
])
def test_short_answer_matches_after_normalization(reply: str, answer: str) -> None:
    assert contains_answer(reply, answer)


@pytest.mark.parametrize(("reply", "answer"), [
    ("grapefruit", "grape"),       # words, not substrings
    ("chips", "fish and chips"),   # a word of the answer is missing
    ("", "rice"),
    ("rice", "the"),               # an answer of articles only matches nothing
])
def test_short_answer_does_not_match(reply: str, answer: str) -> None:
    assert not contains_answer(reply, answer)


def test_match_short_answer_returns_the_matching_gold_answer() -> None:
    gold = ["football", "soccer", "rugby"]
    assert match_short_answer("I think Rugby is the answer", gold) == "rugby"
    assert match_short_answer("cricket", gold) is None
    assert grade({"task": "saq", "gold": gold}, "Soccer!") == {
        "parsed": "Soccer!", "matched": "soccer", "correct": True}


# -- multiple-choice replies -----------------------------------------------------------------

OPTIONS = {"A": "banana", "B": "rice", "C": "bread", "D": "beans"}


@pytest.mark.parametrize(("reply", "letter", "how"), [
    ('{"answer_choice":"B"}', "B", "json"),
    ('{"answer_choice": "rice"}', "B", "json"),
    ("{'answer_choice': 'C'}", "C", "json"),
    ("B. rice", "B", "letter"),
    ("(D)", "D", "letter"),
    ("Answer: C", "C", "letter"),
    ("I would pick D here.", "D", "letter"),
    ("Mostly bread, I think", "C", "option text"),
    ("a banana split", "A", "option text"),  # lower-case "a" is an article, not option A
])
def test_parse_choice(reply: str, letter: str, how: str) -> None:
    parsed = parse_choice(reply, OPTIONS)
    assert (parsed.letter, parsed.how) == (letter, how)


@pytest.mark.parametrize("reply", ["A or B", "rice and beans", "no idea", ""])
def test_ambiguous_choice_is_unparsed_and_wrong(reply: str) -> None:
    assert parse_choice(reply, OPTIONS).letter is None
    assert grade({"task": "mcq", "options": OPTIONS, "answer": "A"}, reply)["correct"] is False


def test_share_a_word_is_blends_distractor_test() -> None:
    assert share_a_word("fried rice", "rice")
    assert share_a_word("breads", "bread")
    assert share_a_word("potato", "potato chips")
    assert not share_a_word("cup of tea", "glass of water")  # "of" is not content
    assert not share_a_word("tortilla", "injera")


# -- multiple-choice construction ---------------------------------------------------------------


def _mcq(tmp_path: Path, seed: int = 0) -> dict:
    files = read_files(snack_files(tmp_path))
    plan = build_items(files, ["Alpha"], ["mcq"], seed, set(), None, eval_templates())
    assert len(plan.items) == 1
    return plan.items[0].to_dict()


def test_mcq_distractors_follow_blend_rules(tmp_path: Path) -> None:
    item = _mcq(tmp_path)
    options = item["options"]
    assert sorted(options) == ["A", "B", "C", "D"]
    assert options[item["answer"]] == "rice"
    assert item["option_countries"][item["answer"]] == "Alpha"
    distractors = {text for letter, text in options.items() if letter != item["answer"]}
    # noodles: Alpha's own answer; fried rice: shares "rice"; pasta: one vote; Epsilon's
    # "breads" duplicates Beta's "bread", so Epsilon offers injera.
    assert distractors <= {"bread", "tortilla", "injera", "beans"}
    assert len(distractors) == 3
    countries = [c for letter, c in item["option_countries"].items() if letter != item["answer"]]
    assert len(set(countries)) == 3 and "Gamma" not in countries
    prompt = item["messages"][-1]["content"]
    for letter, text in options.items():
        assert f"{letter}. {text}" in prompt
    assert '{"answer_choice":""}' in prompt


def test_mcq_is_reproducible_from_its_seed_and_seeds_shuffle(tmp_path: Path) -> None:
    first = _mcq(tmp_path / "a", seed=7)
    assert _mcq(tmp_path / "b", seed=7) == first
    answers = {_mcq(tmp_path / f"s{seed}", seed=seed)["answer"] for seed in range(12)}
    assert len(answers) >= 3, "the correct option's position must vary with the seed"


def test_mcq_filter_and_too_few_distractors(tmp_path: Path) -> None:
    extra = {
        "Alpha": {
            "NA": blend_entry("Which team in Alpha?", [(["rice"], 3)], {"idk": 0, "no-answer": 0, "not-applicable": 1}),
            "ONE": blend_entry("Which dish in Alpha?", [(["soup"], 1), (["stew"], 1)]),
            "FEW": blend_entry("Which drink in Alpha?", [(["tea"], 4)]),
        },
        "Beta": {"FEW": blend_entry("Which drink in Beta?", [(["coffee"], 3)])},
    }
    files = read_files(snack_files(tmp_path, extra))
    plan = build_items(files, ["Alpha"], ["mcq"], 0, set(), None, eval_templates())
    assert [item.question_id for item in plan.items] == ["Q1"]
    assert plan.counts["mcq"]["Alpha"] == {"questions": 4, "excluded": 0, "ineligible": 3,
                                           "eligible": 1, "items": 1}


def test_saq_skips_unanswerable_questions_and_keeps_every_variant(tmp_path: Path) -> None:
    entries = {
        "OK": blend_entry("What do people eat in Alpha?", [(["rice", "white rice"], 3), (["noodles"], 1)]),
        "IDK": blend_entry("Who is it in Alpha?", [(["someone"], 1)], {"idk": 5, "no-answer": 0, "not-applicable": 0}),
        "NA": blend_entry("Which one in Alpha?", [(["x"], 1)], {"idk": 0, "no-answer": 2, "not-applicable": 1}),
    }
    files = read_files([write_blend(tmp_path, "Alpha", entries)])
    plan = build_items(files, ["Alpha"], ["saq"], 0, set(), None, eval_templates())
    assert [item.question_id for item in plan.items] == ["OK"]
    assert plan.items[0].gold == ["rice", "white rice", "noodles"]
    assert "Question: What do people eat in Alpha?" in plan.items[0].messages[-1]["content"]


def test_max_questions_draws_a_seeded_sample(tmp_path: Path) -> None:
    entries = {f"Q{n}": blend_entry(f"Question number {n} about Alpha?", [([f"answer{n}"], 3)])
               for n in range(20)}
    files = read_files([write_blend(tmp_path, "Alpha", entries)])

    def sample(seed: int) -> list[str]:
        plan = build_items(files, ["Alpha"], ["saq"], seed, set(), 5, eval_templates())
        return [item.question_id for item in plan.items]

    assert sample(1) == sample(1)
    assert len(sample(1)) == 5
    assert any(sample(seed) != sample(1) for seed in range(2, 6))


def test_unknown_country_and_file_names(tmp_path: Path) -> None:
    files = read_files(snack_files(tmp_path))
    assert pick_countries(files, ["alpha", "Zeta", "Alpha"]) == ["Alpha", "Zeta"]
    assert pick_countries(files, None) == ["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta"]
    with pytest.raises(UserInputError, match="unknown country 'Narnia'"):
        pick_countries(files, ["Narnia"])
    odd = tmp_path / "alpha.json"
    odd.write_text("{}")
    with pytest.raises(UserInputError, match="cannot tell the country"):
        read_files([odd])


# -- leakage -----------------------------------------------------------------------------------


def _uk_files(tmp_path: Path) -> list:
    entries = {
        "Q-id": blend_entry("What is the most popular fruit in the UK?", [(["apple"], 5)]),
        "Q-text": blend_entry("What is a popular food to go with beer in the UK?", [(["crisps"], 3)]),
        "Q-user": blend_entry("What time do people usually eat dinner in the UK?", [(["18:00"], 3)]),
        "Q-clean": blend_entry("What is the most popular sport in the UK?", [(["football"], 5)]),
    }
    return read_files([write_blend(tmp_path / "blend", "UK", entries),
                       write_blend(tmp_path / "blend", "Spain",
                                   {k: {**v, "en_question": v["en_question"].replace("the UK", "Spain")}
                                    for k, v in entries.items()})])


def test_leaks_found_by_id_by_importer_text_and_inside_user_text(tmp_path: Path) -> None:
    memory_dir = tmp_path / "memory"
    memory = CulturalMemory.open(HashEmbedder(), path=memory_dir)
    memory.add_knowledge([
        # New memories: the BLEnD importer's question id, even with a text that would not match.
        KnowledgeItem(culture="United Kingdom", text="Apples are loved.", question_id="Q-id"),
        # Old memories (no question_id): the importer's text, country removed.
        KnowledgeItem(culture="United Kingdom", text="What is a popular food to go with beer? — crisps"),
        # A user's file that quotes the question inside a longer text.
        KnowledgeItem(culture="Spain", text="Asked 'What time do people usually eat dinner in Spain?' most say 21:00."),
    ])
    files = _uk_files(tmp_path)
    source = leakage.from_memory(str(memory_dir))
    leaks = leakage.find_leaks(files, source)
    assert leaks == {"Q-id": "id", "Q-text": "text", "Q-user": "text"}
    excluded = leakage.excluded_pairs(files, ["United Kingdom", "Spain"], leaks)
    assert {(r["country"], r["question_id"]) for r in excluded} == {
        (c, q) for c in ("United Kingdom", "Spain") for q in ("Q-id", "Q-text", "Q-user")}
    skip = {(r["country"], r["question_id"]) for r in excluded}
    plan = build_items(files, ["United Kingdom", "Spain"], ["saq"], 0, skip, None, eval_templates())
    assert {item.question_id for item in plan.items} == {"Q-clean"}
    assert plan.counts["saq"]["Spain"]["excluded"] == 3


def test_a_memory_ingested_from_blend_leaks_every_question_it_holds(tmp_path: Path) -> None:
    files = _uk_files(tmp_path)
    memory_dir = tmp_path / "memory"
    memory = CulturalMemory.open(HashEmbedder(), path=memory_dir)
    memory.add_knowledge(read_blend(tmp_path / "blend" / "UK_data.json"))
    leaks = leakage.find_leaks(files, leakage.from_memory(str(memory_dir)))
    assert leaks == dict.fromkeys(("Q-id", "Q-text", "Q-user", "Q-clean"), "id")


def test_memory_location_must_be_a_memory(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no such memory directory"):
        leakage.from_memory(str(tmp_path / "missing"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserInputError, match="not a CAReDiO memory"):
        leakage.from_memory(str(tmp_path / "plain"))
    assert list((tmp_path / "plain").iterdir()) == [], "nothing may be created in a wrong directory"


def test_against_run_reads_the_memory_from_the_runs_config(tmp_path: Path) -> None:
    memory_dir = tmp_path / "memory"
    CulturalMemory.open(HashEmbedder(), path=memory_dir).add_knowledge(
        [KnowledgeItem(culture="United Kingdom", text="x", question_id="Q-clean")])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"memory": {"path": str(memory_dir)}}))
    line = {"messages": [{"role": "user", "content": "What is a popular food to go with beer in Spain?"},
                         {"role": "assistant", "content": "tapas"}],
            "metadata": {"sample_id": "s1", "culture": "Spain", "objective": 0.5}}
    (run_dir / "dataset.jsonl").write_text(json.dumps(line) + "\n")
    leaks = leakage.find_leaks(_uk_files(tmp_path), leakage.from_run(run_dir))
    assert leaks == {"Q-clean": "id", "Q-text": "text"}


# -- intervals ------------------------------------------------------------------------------


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_n() -> None:
    small = bootstrap_mean([1, 0] * 10)
    large = bootstrap_mean([1, 0] * 500)
    assert small.low < 0.5 < small.high and small.mean == 0.5
    assert (large.high - large.low) < (small.high - small.low) / 3
    assert bootstrap_mean([1.0] * 30).to_dict() == {"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 30}
    assert bootstrap_mean([]).to_dict()["mean"] is None


def test_paired_difference_uses_shared_units_only() -> None:
    a = {f"q{i}": float(i % 2) for i in range(100)}
    b = {**a, **{f"q{i}": 1.0 for i in range(0, 40, 2)}}  # 20 wrong answers became right
    b["extra"] = 1.0
    del b["q99"]
    diff, only_a, only_b = paired_difference(a, b)
    assert (only_a, only_b, diff.n) == (1, 1, 99)
    assert diff.mean == pytest.approx(20 / 99)
    assert diff.excludes(0.0)
    same, _, _ = paired_difference(a, dict(a))
    assert same.mean == 0.0 and not same.excludes(0.0)
