"""Template loading, overrides and start-up checks (strict variables, file and line)."""

from __future__ import annotations

import itertools
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nodes
import pytest

from caredio.errors import UserInputError
from caredio.prompts import SPECS, PromptTemplate, collect_templates, load_templates, packaged_text


def test_packaged_templates_are_valid_and_render() -> None:
    templates = load_templates()
    assert set(templates) == set(SPECS)
    messages = templates["culture_expert_answer"].render(
        culture="Japan", question="How do people greet?", knowledge=["People bow."])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "People bow." in messages[1]["content"]


def test_user_override_replaces_one_file(tmp_path: Path) -> None:
    text = packaged_text("contrast_critic_contrast").replace("Answer briefly", "Answer very briefly")
    (tmp_path / "contrast_critic_contrast.txt").write_text(text, encoding="utf-8")
    templates = load_templates(tmp_path)
    assert templates["contrast_critic_contrast"].source == str(tmp_path / "contrast_critic_contrast.txt")
    assert templates["refiner_question"].source == "packaged"
    assert templates["contrast_critic_contrast"].hash != load_templates()["contrast_critic_contrast"].hash


def test_unknown_variable_is_reported_with_file_and_line(tmp_path: Path) -> None:
    text = "[system]\nYou are from {{ culture }}.\n[user]\n{{ question }}\nAlso {{ mood }}.\n"
    path = tmp_path / "contrast_critic_contrast.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserInputError, match=rf"{path}:5: unknown variable 'mood'"):
        load_templates(tmp_path)


def test_missing_required_variable_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "culture_expert_answer.txt"
    path.write_text("[user]\nAnswer as someone from {{ culture }}.\n", encoding="utf-8")
    _, problems = collect_templates(tmp_path)
    assert any("required variable 'question'" in p and str(path) in p for p in problems)


def test_syntax_error_and_unknown_template_name(tmp_path: Path) -> None:
    (tmp_path / "refiner_question.txt").write_text("[user]\n{{ question \n", encoding="utf-8")
    _, problems = collect_templates(tmp_path)
    assert any("syntax error" in p for p in problems)
    (tmp_path / "refiner_question.txt").unlink()
    (tmp_path / "typo_template.txt").write_text("[user]\nhi\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="unknown template name"):
        load_templates(tmp_path)


def test_render_refuses_a_missing_required_variable() -> None:
    template = load_templates()["culture_expert_answer"]
    with pytest.raises(TypeError, match="did not pass"):
        template.render(culture="Japan", knowledge=[])


@pytest.mark.parametrize(("edit", "expected"), [
    ("{{ critique", 15),            # unclosed expression: Jinja notices at line 17
    ("{% if critique %}", 15),      # unclosed block: Jinja notices at the end of the file
    ("{% for x in knowledge %}", 15),  # Jinja notices at the next {% endif %}
    ("{{ critique }", 15),          # noticed where it is
])
def test_a_syntax_error_is_reported_at_the_line_the_user_edited(tmp_path: Path, edit: str,
                                                                expected: int) -> None:
    lines = packaged_text("refiner_response").splitlines()
    assert lines[14] == "{% if missing_core %}"  # the edit goes on line 15 of the file
    lines[14] += " " + edit
    path = tmp_path / "refiner_response.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, problems = collect_templates(tmp_path)
    [problem] = problems
    assert problem.startswith(f"{path}:{expected}: template syntax error"), problem


def test_a_removed_end_tag_points_at_the_block_it_leaves_open(tmp_path: Path) -> None:
    lines = packaged_text("refiner_response").splitlines()
    assert lines[17].startswith("{% for item in missing_core") and lines[19] == "{% endfor %}"
    del lines[19]
    path = tmp_path / "refiner_response.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    [problem] = collect_templates(tmp_path)[1]
    assert problem.startswith(f"{path}:18: template syntax error"), problem
    assert "'for' block opened on line 18 is never closed" in problem


# -- every template, every optional block on and off: no line joined to the next ---------------

OMITTED = object()  # the variable is not passed at all
# What a caller passes for each variable when its block has something to show ...
ON: dict[str, Any] = {
    "culture": "Japan", "topic": "Food and drink", "topic_description": "what people eat and drink",
    "knowledge": ["People eat rice at most meals.", "Tea is served first."],
    "avoid_questions": ["What do you eat for breakfast?"],
    "question": "How do you greet a guest at home?",
    "response": "We bow at the door. We take off our shoes.",
    "representativeness": 0.61, "distinctiveness": 0.42, "objective": 0.515,
    "generic_sentences": ["We take off our shoes."], "missing_core": ["Guests are offered tea."],
    "contrast_answers": {"China": "We shake hands.", "South Korea": "We bow slightly."},
    "critique": "The answer is generic.",
    "history": [{"round": 1, "step": "response", "question": "How do you greet?", "response": "We bow.",
                 "representativeness": 0.5, "distinctiveness": 0.4, "objective": 0.45}],
    "options": [("A", "rice"), ("B", "bread"), ("C", "noodles"), ("D", "soup")],
}
# ... and every way it says there is nothing (the agents pass empty values; None and omitted
# where the template tests "is defined" / "is not none").
OFF: dict[str, list[Any]] = {
    "topic": [""], "topic_description": [""], "knowledge": [[]], "avoid_questions": [[]],
    "objective": [None, OMITTED], "generic_sentences": [[]], "missing_core": [[]],
    "contrast_answers": [{}], "history": [[]],
}
# A sentence or label ending and the next one starting with no space or newline between:
# "Topic: Food (what people eat)Facts about everyday life there:".
GLUED = re.compile(r"[.?!:)][A-Z]")


def _every_template() -> list[PromptTemplate]:
    from caredio.evaluation.tasks import eval_templates

    templates = [*load_templates().values(), *eval_templates().values()]
    folder = resources.files("caredio.prompts")
    files = {f.name.removesuffix(".txt") for f in folder.iterdir() if f.name.endswith(".txt")}
    files |= {f.name.removesuffix(".txt") for f in folder.joinpath("eval").iterdir() if f.name.endswith(".txt")}
    assert files == {t.name for t in templates}, "a template file the loaders do not load"
    return templates


def _conditions(template: PromptTemplate) -> list[str]:
    """The template's variables that some {% if %} tests, in order."""
    names: list[str] = []
    for node in jinja2.Environment().parse(template.text).find_all(jinja2.nodes.If):
        tested = [node.test, *node.test.find_all(jinja2.nodes.Name)]  # find_all skips the node itself
        names += [n.name for n in tested if isinstance(n, jinja2.nodes.Name)
                  and n.name in template.spec.allowed]
    return list(dict.fromkeys(names))


def _line_heads(template: PromptTemplate) -> list[str]:
    """The literal text each line of the template begins with (before any tag)."""
    heads = []
    for line in template.text.splitlines():
        head = re.split(r"\{[{%#]", line, maxsplit=1)[0].strip()
        if len(re.findall(r"[A-Za-z]", head)) >= 3 and not head.startswith("["):
            heads.append(head)
    return heads


@pytest.mark.parametrize("template", _every_template(), ids=lambda t: t.name)
def test_every_block_on_and_off_renders_each_line_on_its_own(template: PromptTemplate) -> None:
    conditions = _conditions(template)
    assert set(template.spec.allowed) <= set(ON), "give the new variable a value in ON"
    assert set(conditions) <= set(OFF), "give the new condition its empty values in OFF"
    heads = _line_heads(template)
    states = [[ON[name], *OFF[name]] for name in conditions]
    for combination in itertools.product(*states):
        variables = {name: ON[name] for name in template.spec.allowed}
        variables.update(zip(conditions, combination, strict=True))
        variables = {k: v for k, v in variables.items() if v is not OMITTED}
        shown = {name: value is ON[name] for name, value in zip(conditions, combination, strict=True)}
        for message in template.render(**variables):
            content = message["content"]
            glued = GLUED.search(content)
            assert glued is None, (template.name, shown, content[max(glued.start() - 40, 0):glued.end() + 40])
            for head in heads:
                for found in re.finditer(re.escape(head), content):
                    assert found.start() == 0 or content[found.start() - 1] == "\n", (
                        template.name, shown, f"{head!r} does not start a line:",
                        content[max(found.start() - 40, 0):found.end()])
