"""Agent outputs that parse but cannot be used: empty fields, questions that ask nothing,
answers that name the culture. They are refused while parsing, fed back and re-asked, and a
sample that never gets a usable reply fails as a sample; nothing unusable ships.

The unit tests use the agents' real output models; the run tests drive the real graph against
the FAKE stub server (its replies are scripted per turn) with the FAKE HashEmbedder, because
they are about our own retry and failure logic, not about content.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from caredio.agents.checks import answer_rules, question_rules
from caredio.agents.contrast_critic import ContrastAnswer, Critique
from caredio.agents.culture_expert import ElicitedKnowledge, ExpertAnswer, ExpertQuestion
from caredio.agents.refiner import RefinedQuestion, RefinedResponse
from caredio.culture_names import named_in
from caredio.errors import ModelOutputError
from caredio.llm.structured import LAST_TRY, parse_reply
from caredio.run.runner import resume_run, start_run
from caredio.rundir.files import read_jsonl
from testing.jobs import HashEmbedder, stub_settings
from testing.schema_example import example_from_schema
from testing.stub_server import StubOpenAIServer, _prompt_schema

# Both seen in demo runs on main, kept with D 0.79 and shipped.
NOT_QUESTIONS = [
    "The question you asked about South Korea's etiquette",
    "Gifts are given and received with both hands, or with the right hand supported by the left",
    "",
    "   ",
    "Why?",
]


def _refusal(model: type[Any], payload: dict[str, Any], rules: dict[str, Any] | None = None) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(payload, context=rules)
    [error] = caught.value.errors()
    assert error["type"] == "unusable_output", error
    return str(error["msg"])


@pytest.mark.parametrize("text", NOT_QUESTIONS)
@pytest.mark.parametrize("model", [ExpertQuestion, RefinedQuestion])
def test_a_question_that_asks_nothing_is_refused(model: type[Any], text: str) -> None:
    _refusal(model, {"question": text}, question_rules("South Korea", ["Japan", "China"]))


@pytest.mark.parametrize(("text", "named"), [
    ("How do you greet someone in Japan?", "'Japan'"),
    ("What do Koreans bring when visiting a home?", "'Koreans'"),
    ("Which gift would a Chinese host refuse at first?", "'Chinese'"),  # a contrast culture
])
def test_a_question_naming_the_culture_or_a_contrast_culture_is_refused(text: str, named: str) -> None:
    reason = _refusal(ExpertQuestion, {"question": text}, question_rules("Japan", ["South Korea", "China"]))
    assert named in reason


def test_a_usable_question_is_kept_without_its_label_or_quotes() -> None:
    rules = question_rules("Japan", ["South Korea"])
    parsed = ExpertQuestion.model_validate({"question": ' Question: "How do you greet an elder at home?" '},
                                           context=rules)
    assert parsed.question == "How do you greet an elder at home?"
    # A question that only lost its mark keeps it; a statement does not become a question.
    assert ExpertQuestion.model_validate({"question": "When do you open a gift"}, context=rules
                                         ).question == "When do you open a gift?"
    assert ExpertQuestion.model_validate({"question": "Which gift do you bring to a wedding"}, context=rules
                                         ).question == "Which gift do you bring to a wedding?"
    for statement in ("How people greet differs from place to place.", "Do not point chopsticks at people",
                      "When visiting a home, bring a small gift", "What matters most is respect"):
        _refusal(ExpertQuestion, {"question": statement}, rules)


@pytest.mark.parametrize("model,field", [(ExpertAnswer, "answer"), (RefinedResponse, "response")])
def test_an_answer_must_answer_without_naming_the_culture(model: type[Any], field: str) -> None:
    question = "How do you greet an elder at home?"
    rules = answer_rules("Japan", question)
    assert "'Japanese'" in _refusal(model, {field: "Japanese people bow deeply."}, rules)
    assert "'Japan'" in _refusal(model, {field: "In Japan, we bow."}, rules)
    assert "repeats the question" in _refusal(model, {field: question}, rules)
    assert "asks questions" in _refusal(model, {field: "Do you bow? Or shake hands?"}, rules)
    assert "empty" in _refusal(model, {field: " "}, rules)
    # Seen from SmolLM2-135M on the bare-text fallback: its JSON echoed as the answer.
    echoed = 'Here is the corrected JSON:\n```json\n{"answer": "We bow."}\n```'
    assert "JSON or code" in _refusal(model, {field: echoed}, rules)
    assert "JSON or code" in _refusal(model, {field: '{"properties": {"answer": "We bow."}}'}, rules)
    assert "too short" in _refusal(model, {field: "We"}, rules)
    kept = model.model_validate({field: " We bow, deeper for older people. "}, context=rules)
    assert getattr(kept, field) == "We bow, deeper for older people."


def test_other_text_fields_must_not_be_blank() -> None:
    _refusal(ContrastAnswer, {"answer": "\n"})
    _refusal(Critique, {"summary": "", "suggestions": ["x"]})
    _refusal(ElicitedKnowledge, {"facts": ["", "  "]})
    assert Critique.model_validate({"summary": "Too generic.", "suggestions": ["", " add a ritual "]}
                                   ).suggestions == ["add a ritual"]


def test_names_are_whole_words_in_their_case_and_native_script() -> None:
    assert named_in("We eat turkey at home.", ["Turkey"]) == []  # the bird, not the country
    assert named_in("Let us eat.", ["United States"]) == []
    assert named_in("Rules in the U.S. and Japan's cities", ["United States", "Japan"]) == ["U.S.", "Japan's"]
    assert named_in("我们在日本吃饭", ["Japan"]) == ["日本"]
    assert named_in("Folk songs of Bavaria", ["Bavaria"]) == ["Bavaria"]  # not in the table: its name


def test_the_checks_and_the_scorer_read_one_table_of_names() -> None:
    """What the checks refuse as naming a culture, the scorer neutralizes: one table
    (caredio/data/culture_names.json), so a form added there counts for both."""
    from caredio.culture_names import _table, mentions, names_and_demonyms, neutralize

    checked = 0
    for culture in _table():
        names, demonyms = names_and_demonyms(culture)
        for form in [*names, *demonyms]:
            text = f"We met {form} there."
            assert named_in(text, [culture]) == [form], (culture, form)
            assert mentions(text, [culture]), (culture, form)
            assert form not in neutralize(text, [culture]), (culture, form)
            checked += 1
    assert checked >= 240
    # Forms the scorer alone knew before the tables were merged.
    assert named_in("Brits queue; so do South Koreans.", ["United Kingdom", "South Korea"]) == [
        "Brits", "South Koreans"]


def test_a_reply_that_copies_its_format_instructions_is_refused() -> None:
    """Seen in a demo run: the answer was the schema's field description, then more of it."""
    echoed = {"answer": "The insider's answer, 3 to 5 sentences, naming no country.\nExpertAnswer: ..."}
    rules = answer_rules("Japan", "How do you greet an elder at home?")
    with pytest.raises(ModelOutputError, match="field 'answer' repeats the format instructions"):
        parse_reply(ExpertAnswer, echoed, json.dumps(echoed), lenient=False, context=rules)
    with pytest.raises(ModelOutputError, match="repeats the format instructions"):  # as bare text too
        parse_reply(ExpertAnswer, None, echoed["answer"], lenient=True, context=rules)
    kept = parse_reply(ExpertAnswer, {"answer": "We bow, deeper for older people."}, "", lenient=False,
                       context=rules)
    assert kept.answer == "We bow, deeper for older people."


def test_a_cut_off_or_renamed_reply_is_salvaged_only_as_far_as_it_is_usable() -> None:
    """Prompt-and-parse on a small model: the JSON cut at max_tokens keeps its whole sentences,
    a renamed key still fills the one field; the checks apply to what is salvaged."""
    rules = answer_rules("Japan", "How do you greet an elder at home?")
    cut = '```json\n{"answer": "We bow deeply to elders. We also use polite words when we sp'
    assert parse_reply(ExpertAnswer, None, cut, lenient=True, context=rules).answer == "We bow deeply to elders."
    renamed = {"response": "We bow deeply to elders at home."}
    assert parse_reply(ExpertAnswer, renamed, json.dumps(renamed), lenient=True, context=rules
                       ).answer == "We bow deeply to elders at home."
    with pytest.raises(ModelOutputError, match="names 'Japan'"):
        parse_reply(ExpertAnswer, None, '{"answer": "In Japan we bow to elders. We also sp', lenient=True,
                    context=rules)
    with pytest.raises(ModelOutputError, match="JSON or code"):  # nothing whole to keep
        parse_reply(ExpertAnswer, None, '{"answer": "We bow deeply to elders and we al', lenient=True,
                    context=rules)
    # Seen in the e2e demo: the question, then chatter about it.
    chatty = 'How do you greet someone older?\nThe answer is: "A question whose answer differs."'
    assert parse_reply(ExpertQuestion, None, chatty, lenient=True, context=question_rules("Japan")
                       ).question == "How do you greet someone older?"
    with pytest.raises(ModelOutputError):  # strict methods salvage nothing
        parse_reply(ExpertAnswer, renamed, json.dumps(renamed), lenient=False, context=rules)


def test_refused_content_is_never_replaced_by_the_raw_reply() -> None:
    """Prompt-and-parse may use a bare-text reply as the field, but not to overrule a refusal:
    here the raw text happens to end with '?', and would have shipped."""
    raw = 'Sure! {"question": ""} What do people bring to a funeral?'
    with pytest.raises(ModelOutputError, match="field 'question' is empty"):
        parse_reply(ExpertQuestion, {"question": ""}, raw, lenient=True, context=question_rules("Japan"))


# -- in a run ---------------------------------------------------------------------------------

def _scripted(bad: dict[str, Any], times: dict[str, int]) -> Any:
    """A FAKE reply writer for the prompt-and-parse path: schema-valid filler, except that the
    culture expert's question for the cultures in ``bad`` is the unusable text given there,
    ``times[culture]`` times (-1: always)."""
    def respond(body: dict[str, Any]) -> str:
        schema = _prompt_schema(body["messages"]) or {"type": "object"}
        value = example_from_schema(schema, random.Random(json.dumps(body["messages"])))
        system = body["messages"][0]["content"]
        for culture, text in bad.items():
            asked = schema.get("title") == "ExpertQuestion" and f"grew up in {culture}" in system
            if asked and times[culture] != 0:
                times[culture] -= 1
                value = {"question": text}
        return json.dumps(value)

    return respond


def test_an_empty_question_is_re_asked_with_the_reason_and_never_ships(tmp_path: Path) -> None:
    times = {"Japan": 1}
    with StubOpenAIServer(responder=_scripted({"Japan": ""}, times)) as stub:
        settings = stub_settings(stub.url, str(tmp_path), llm={"structured_output": "prompt"})
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=HashEmbedder())
        fed_back = [m["content"] for body in stub.requests for m in body["messages"]
                    if "That reply could not be used" in str(m.get("content"))]
    assert times["Japan"] == 0  # the empty question was served
    assert record["status"] == "completed" and record["completed"] == 2
    assert fed_back and "field 'question' is empty" in fed_back[0]
    [turn] = [t for t in read_jsonl(run_dir / "trace.jsonl")
              if t["sample_id"].startswith("japan") and t["template"] == "culture_expert_question"]
    assert turn["retries"] == 1 and "field 'question' is empty" in turn["retry_reasons"][0]
    assert turn["error"] is None and turn["parsed"]["question"].endswith("?")
    for line in read_jsonl(run_dir / "dataset.jsonl"):
        question = line["messages"][0]["content"]
        assert question.strip() and question.endswith("?")


def test_a_sample_that_never_gets_a_question_fails_alone_and_resume_retries_it(tmp_path: Path) -> None:
    times = {"Japan": -1}
    bad = {"Japan": "The question you asked about South Korea's etiquette"}
    embedder = HashEmbedder()
    with StubOpenAIServer(responder=_scripted(bad, times)) as stub:
        settings = stub_settings(stub.url, str(tmp_path), llm={"structured_output": "prompt"})
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=embedder)
        assert record["completed"] == 1 and record["failed"] == 1
        [failure] = record["failures"]
        assert failure["sample_id"].startswith("japan")
        assert "ModelOutputError" in failure["error"] and "is not a question" in failure["error"]
        # Two drafts (DRAFT_ATTEMPTS), each with its re-asks, before the sample fails.
        failed = [t for t in read_jsonl(run_dir / "trace.jsonl") if t["error"]]
        assert [(t["template"], t["retries"]) for t in failed] == [("culture_expert_question", 3)] * 2
        shipped = [line["metadata"]["sample_id"] for line in read_jsonl(run_dir / "dataset.jsonl")]
        assert shipped == ["china-food_drink-000"]

        times["Japan"] = 0  # the model behaves now
        record = resume_run(run_dir, lambda kind, data: None, embedder=embedder)
    assert record["status"] == "completed" and record["completed"] == 2 and record["failures"] == []
    questions = {line["metadata"]["sample_id"]: line["messages"][0]["content"]
                 for line in read_jsonl(run_dir / "dataset.jsonl")}
    assert set(questions) == {"japan-food_drink-000", "china-food_drink-000"}
    assert all(q.endswith("?") and "etiquette" not in q for q in questions.values())


def test_a_question_the_model_cannot_answer_usably_is_replaced_not_the_sample_lost(tmp_path: Path) -> None:
    """The insider's answer stays unusable through all its re-asks: the draft gets a new
    question (the old one in avoid_questions) instead of failing the sample."""
    answers = {"bad": 3}  # one answer turn's attempts on the prompt method (parse_retries 2)

    def respond(body: dict[str, Any]) -> str:
        schema = _prompt_schema(body["messages"]) or {"type": "object"}
        value = example_from_schema(schema, random.Random(json.dumps(body["messages"])))
        if schema.get("title") == "ExpertAnswer" and answers["bad"] > 0:
            answers["bad"] -= 1
            value = {"answer": "Do you bow to elders? Or do you shake hands?"}
        return json.dumps(value)

    with StubOpenAIServer(responder=respond) as stub:
        settings = stub_settings(stub.url, str(tmp_path), cultures=("Japan",), llm={"structured_output": "prompt"})
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=HashEmbedder())
        prompts = [body["messages"] for body in stub.requests]
    assert answers["bad"] == 0
    assert record["status"] == "completed" and record["completed"] == 1 and record["failed"] == 0
    drafts = [t for t in read_jsonl(run_dir / "trace.jsonl") if t["round"] == 0 and t["agent"] == "culture_expert"]
    assert [(t["step"], t["error"] is None) for t in drafts] == [
        ("question", True), ("answer", False), ("question", True), ("answer", True)]
    assert "asks questions" in drafts[1]["error"]
    first, second = drafts[0]["parsed"]["question"], drafts[2]["parsed"]["question"]
    assert first != second
    asked_again = [m for m in prompts if "Do not repeat these questions" in m[-1]["content"]]
    assert asked_again and first in asked_again[0][-1]["content"]
    [line] = read_jsonl(run_dir / "dataset.jsonl")
    assert "?" not in line["messages"][1]["content"]


def test_names_are_refused_and_fed_back_and_only_the_last_try_takes_them_out(tmp_path: Path) -> None:
    """An answer that names the culture through every re-ask: the refusals are fed back and in
    the trace; the last try's answer ships with the names taken out, never with them."""
    named = "In Japan, we bow to our elders first. Japanese guests bring a small gift."

    def respond(body: dict[str, Any]) -> str:
        schema = _prompt_schema(body["messages"]) or {"type": "object"}
        value = example_from_schema(schema, random.Random(json.dumps(body["messages"])))
        if schema.get("title") == "ExpertAnswer":
            value = {"answer": named}
        return json.dumps(value)

    with StubOpenAIServer(responder=respond) as stub:
        settings = stub_settings(stub.url, str(tmp_path), cultures=("Japan",), llm={"structured_output": "prompt"})
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=HashEmbedder())
        fed_back = [m["content"] for body in stub.requests for m in body["messages"]
                    if "That reply could not be used" in str(m.get("content"))]
    assert record["completed"] == 1 and record["failed"] == 0
    [draft] = [t for t in read_jsonl(run_dir / "trace.jsonl") if t["template"] == "culture_expert_answer"
               and t["round"] == 0]
    assert draft["retries"] == 2 and all("names 'Japan', 'Japanese'" in r for r in draft["retry_reasons"])
    assert any("names 'Japan'" in f for f in fed_back)
    assert "Japan" in draft["output"]  # the reply as the model wrote it
    assert draft["parsed"]["answer"] == "We bow to our elders first. local guests bring a small gift."
    for line in read_jsonl(run_dir / "dataset.jsonl"):
        assert not named_in(line["messages"][1]["content"], ["Japan"])
    # Without the last-try flag the same text is refused.
    rules = answer_rules("Japan", "How do you greet an elder at home?")
    _refusal(ExpertAnswer, {"answer": named}, rules)
    assert ExpertAnswer.model_validate({"answer": named}, context={**rules, LAST_TRY: True}
                                       ).answer.startswith("We bow")


def test_an_unusable_rewrite_ends_the_loop_and_the_sample_keeps_its_best_usable_version(
        tmp_path: Path) -> None:
    """The draft was usable and scored; a refiner that then only writes answers made of
    questions must not cost the sample, nor ship such an answer."""
    def respond(body: dict[str, Any]) -> str:
        schema = _prompt_schema(body["messages"]) or {"type": "object"}
        value = example_from_schema(schema, random.Random(json.dumps(body["messages"])))
        if schema.get("title") == "RefinedResponse":
            value = {"response": "Do hosts bow first? Or do guests?"}
        return json.dumps(value)

    with StubOpenAIServer(responder=respond) as stub:
        settings = stub_settings(stub.url, str(tmp_path), rounds=2, cultures=("Japan",),
                                 llm={"structured_output": "prompt"})
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=HashEmbedder())
    assert record["status"] == "completed" and record["completed"] == 1 and record["failed"] == 0
    [line] = read_jsonl(run_dir / "dataset.jsonl")
    assert line["metadata"]["stop_reason"] == "refinement_unusable"
    assert line["metadata"]["best_round"] == 0 and line["metadata"]["versions"] == 1
    assert "?" not in line["messages"][1]["content"]
    [failed] = [t for t in read_jsonl(run_dir / "trace.jsonl") if t["error"]]
    assert failed["template"] == "refiner_response" and "asks questions" in failed["error"]
