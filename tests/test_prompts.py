"""Template loading, overrides and start-up checks (strict variables, file and line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from caredio.errors import UserInputError
from caredio.prompts import SPECS, collect_templates, load_templates, packaged_text


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
