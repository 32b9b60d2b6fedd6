"""BLEnD-style evaluation items, built from BLEnD ``{Country}_data.json`` files.

Two tasks, after BLEnD (Myung et al., NeurIPS 2024; ``evaluation/`` of its repository):

* **saq** — short answer. The English question (it names the country) with BLEnD's prompt
  "Read the following question and provide a single answer without any explanations."; the
  reply is graded against every answer the country's annotators gave
  (:func:`caredio.evaluation.grading.match_short_answer`). Questions most annotators could not
  answer are skipped as BLEnD skips them (no-answer + not-applicable >= 3, or idk >= 5).
* **mcq** — multiple choice, four options: the country's majority answer and three answers
  that *other* countries' annotators gave to the same question (at least 2 votes there) and
  that share no content word with any answer of this country; at most one per other country,
  none sharing a word with another. BLEnD's filter applies per country: no "not-applicable"
  vote, at most 2 idk-type votes, and a majority answer with at least 2 votes.

Where this differs from BLEnD's construction (also in docs/eval.md): BLEnD enumerates every
combination of distractors and sorts options alphabetically; here one item per question and
country draws three distractors and shuffles the options with a recorded seed. BLEnD fills
questions with fewer than three distractors with GPT-4-written dummy options and checks
synonyms with GPT-4; here such questions are skipped (and counted), and synonyms are caught
only by shared words. BLEnD drops a question for every country when one country fails the
filter; here the filter applies to each country alone.
"""

from __future__ import annotations

import difflib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caredio.errors import UserInputError
from caredio.evaluation.grading import LETTERS, share_a_word
from caredio.memory.blend import BlendQuestion, read_blend_questions
from caredio.memory.items import canonical_culture
from caredio.prompts import PromptTemplate, TemplateSpec, check_template

TASKS = ("saq", "mcq")
MIN_VOTES = 2  # BLEnD: a majority answer, and a distractor, need at least two annotators
SPECS = {
    "saq": TemplateSpec("eval_saq", "evaluated", "saq", frozenset({"question"})),
    "mcq": TemplateSpec("eval_mcq", "evaluated", "mcq", frozenset({"question", "options"})),
}


def eval_templates() -> dict[str, PromptTemplate]:
    """The packaged eval prompts (``prompts/eval/``), checked like the agents' templates."""
    from importlib import resources

    templates = {}
    for task, spec in SPECS.items():
        text = resources.files("caredio.prompts").joinpath(f"eval/{spec.name}.txt").read_text(
            encoding="utf-8")
        problems = check_template(spec, text, f"eval/{spec.name}.txt (packaged)")
        if problems:  # a packaged template is ours: a broken one is a bug, not user input
            raise RuntimeError(problems[0])
        templates[task] = PromptTemplate(spec=spec, text=text, source="packaged")
    return templates


@dataclass
class CountryFile:
    """One BLEnD file: its country and its questions by id."""

    path: Path
    country: str
    questions: dict[str, BlendQuestion]


def country_of(path: Path) -> str:
    if not path.name.endswith("_data.json"):
        raise UserInputError(
            f"{path}: cannot tell the country from the file name; BLEnD files are named "
            "{Country}_data.json (e.g. UK_data.json)")
    return canonical_culture(path.name.removesuffix("_data.json"))


def read_files(paths: list[Path]) -> list[CountryFile]:
    """Every file read and checked whole before anything else happens; one country per file."""
    files: list[CountryFile] = []
    for path in paths:
        # Before the name: "nonexistent.json" is missing, whatever its name would say.
        if not path.exists():
            raise UserInputError(f"{path}: file not found")
        if path.is_dir():
            raise UserInputError(f"{path}: is a directory, not a BLEnD {{Country}}_data.json file")
        country = country_of(path)
        if any(f.country == country for f in files):
            other = next(f.path for f in files if f.country == country)
            raise UserInputError(f"{path}: a second file for {country} (first: {other})")
        questions = read_blend_questions(path, country)
        files.append(CountryFile(path, country, {q.qid: q for q in questions}))
    return files


def pick_countries(files: list[CountryFile], wanted: list[str] | None) -> list[str]:
    """The countries to evaluate: all the files' by default, or the named ones among them."""
    known = [f.country for f in files]
    if not wanted:
        return known
    by_lower = {country.lower(): country for country in known}
    chosen = []
    for name in wanted:
        country = by_lower.get(canonical_culture(name).lower(), canonical_culture(name))
        if country not in known:
            close = difflib.get_close_matches(country, known, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise UserInputError(f"--countries: unknown country '{name}' (the files given hold: "
                                 f"{', '.join(known)}){hint}")
        chosen.append(country)
    return list(dict.fromkeys(chosen))


def saq_valid(question: BlendQuestion) -> bool:
    """BLEnD's soft_exact_match skips questions most annotators could not answer."""
    idks = question.idks
    unanswerable = idks.get("no-answer", 0) + idks.get("not-applicable", 0) >= 3
    return not (unanswerable or idks.get("idk", 0) >= 5 or not question.answers)


def first_variant(answer: Any) -> str:
    return str(answer.variants[0]).strip() if answer.variants else str(answer.text)


def gold_answers(question: BlendQuestion) -> list[str]:
    """Every English variant of every annotator answer, most votes first, without repeats."""
    gold = [str(v).strip() for answer in question.answers for v in answer.variants]
    return list(dict.fromkeys(g for g in gold if g))


def majority(question: BlendQuestion) -> tuple[str, int] | None:
    """The country's majority answer for multiple choice, if BLEnD's filter lets it through."""
    idks = question.idks
    if idks.get("not-applicable", 0) > 0 or sum(idks.values()) > 2 or not question.answers:
        return None
    top = question.answers[0]
    if top.count < MIN_VOTES:
        return None
    return first_variant(top), top.count


def distractor_candidates(qid: str, country: str, pool: list[CountryFile]) -> list[tuple[str, str]]:
    """(answer, other country): per other country its most-voted answer that this country lacks."""
    own = next(f for f in pool if f.country == country).questions[qid]
    own_answers = [str(v) for a in own.answers for v in a.variants] or [a.text for a in own.answers]
    found: list[tuple[str, str]] = []
    for other in pool:
        if other.country == country or qid not in other.questions:
            continue
        for answer in other.questions[qid].answers:  # most votes first
            text = first_variant(answer)
            if answer.count < MIN_VOTES or not text:
                break
            if any(share_a_word(text, mine) for mine in own_answers):
                continue
            if any(share_a_word(text, taken) for taken, _ in found):
                continue
            found.append((text, other.country))
            break
    return found


@dataclass
class Item:
    """One question put to the model, with everything needed to grade it."""

    item_id: str
    task: str
    country: str
    question_id: str
    topic: str
    question: str
    messages: list[dict[str, str]]
    gold: list[str] = field(default_factory=list)  # saq: annotator answers
    options: dict[str, str] = field(default_factory=dict)  # mcq: letter -> option
    option_countries: dict[str, str] = field(default_factory=dict)
    answer: str = ""  # mcq: the correct letter

    def to_dict(self) -> dict[str, Any]:
        record = dict(self.__dict__)
        if self.task == "saq":
            for key in ("options", "option_countries", "answer"):
                record.pop(key)
        else:
            record.pop("gold")
        return record


def slug(text: str) -> str:
    return "_".join(text.split())


def build_saq(question: BlendQuestion, template: PromptTemplate) -> Item:
    return Item(
        item_id=f"saq:{slug(question.culture)}:{question.qid}", task="saq",
        country=question.culture, question_id=question.qid, topic=question.topic,
        question=question.en_question,
        messages=template.render(question=question.en_question), gold=gold_answers(question),
    )


def build_mcq(question: BlendQuestion, pool: list[CountryFile], template: PromptTemplate,
              seed: int) -> Item | None:
    """One four-option item, or None when the filter or the distractors rule it out."""
    top = majority(question)
    if top is None:
        return None
    candidates = distractor_candidates(question.qid, question.culture, pool)
    if len(candidates) < len(LETTERS) - 1:
        return None
    rng = random.Random(f"{seed}:mcq:{question.culture}:{question.qid}")
    chosen = rng.sample(candidates, len(LETTERS) - 1)
    options = [(top[0], question.culture), *chosen]
    rng.shuffle(options)
    letters = dict(zip(LETTERS, options, strict=True))
    correct = next(letter for letter, (_, c) in letters.items() if c == question.culture)
    listed = [(letter, text) for letter, (text, _) in letters.items()]
    return Item(
        item_id=f"mcq:{slug(question.culture)}:{question.qid}", task="mcq",
        country=question.culture, question_id=question.qid, topic=question.topic,
        question=question.en_question,
        messages=template.render(question=question.en_question, options=listed),
        options={letter: text for letter, text in listed},
        option_countries={letter: c for letter, (_, c) in letters.items()}, answer=correct,
    )


def _build(task: str, question: BlendQuestion, pool: list[CountryFile], template: PromptTemplate,
           seed: int) -> Item | None:
    if task == "saq":
        return build_saq(question, template) if saq_valid(question) else None
    return build_mcq(question, pool, template, seed)


@dataclass
class Plan:
    """The items, and how many questions each step left out (for the summary)."""

    items: list[Item]
    counts: dict[str, dict[str, dict[str, int]]]  # task -> country -> {questions, ineligible, ...}


def build_items(files: list[CountryFile], countries: list[str], tasks: list[str], seed: int,
                excluded: set[tuple[str, str]], max_questions: int | None,
                templates: dict[str, PromptTemplate]) -> Plan:
    """Items per task and country: eligible, not excluded, then a seeded sample if asked.

    ``excluded`` holds (country, question id) pairs the leakage check found in memory.
    """
    items: list[Item] = []
    counts: dict[str, dict[str, dict[str, int]]] = {}
    by_country = {f.country: f for f in files}
    for task in tasks:
        counts[task] = {}
        for country in countries:
            questions = list(by_country[country].questions.values())
            built: list[Item] = []
            ineligible = leaked = 0
            for question in questions:
                if (country, question.qid) in excluded:
                    leaked += 1
                    continue
                item = _build(task, question, files, templates[task], seed)
                if item is None:
                    ineligible += 1
                    continue
                built.append(item)
            eligible = len(built)
            if max_questions is not None and len(built) > max_questions:
                rng = random.Random(f"{seed}:sample:{task}:{country}")
                keep = set(rng.sample(range(len(built)), max_questions))
                built = [item for index, item in enumerate(built) if index in keep]
            counts[task][country] = {"questions": len(questions), "excluded": leaked,
                                     "ineligible": ineligible, "eligible": eligible,
                                     "items": len(built)}
            items += built
    return Plan(items, counts)
