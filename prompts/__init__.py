"""Prompt templates: plain text files, one per agent step, rendered with strict variables.

A template file holds a ``[system]`` section and a ``[user]`` section (Jinja2 syntax inside).
Packaged templates live beside this module; a user directory overrides them file by file.
Every template declares the variables it may use and the ones it must use: a template that
references an unknown variable or drops a required one is rejected at start-up, naming the
file and line, rather than failing (or silently rendering nothing) in the middle of a run.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

from caredio.errors import UserInputError

SECTION = re.compile(r"^\[(system|user)\]\s*$", re.MULTILINE)


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    agent: str
    step: str
    required: frozenset[str]
    optional: frozenset[str] = field(default_factory=frozenset)

    @property
    def allowed(self) -> frozenset[str]:
        return self.required | self.optional


def _spec(name: str, agent: str, step: str, required: str, optional: str = "") -> TemplateSpec:
    return TemplateSpec(name, agent, step, frozenset(required.split()), frozenset(optional.split()))


SPECS: dict[str, TemplateSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "culture_expert_question", "culture_expert", "question",
            "culture topic knowledge", "topic_description avoid_questions",
        ),
        _spec("culture_expert_answer", "culture_expert", "answer", "culture question knowledge"),
        _spec(
            "culture_expert_knowledge", "culture_expert", "elicit_knowledge",
            "culture topic", "topic_description",
        ),
        _spec("contrast_critic_contrast", "contrast_critic", "contrast", "culture question"),
        _spec(
            "contrast_critic_critique", "contrast_critic", "critique",
            "culture question response representativeness distinctiveness",
            "objective generic_sentences missing_core contrast_answers",
        ),
        _spec(
            "refiner_question", "refiner", "refine_question",
            "culture question critique", "topic history",
        ),
        _spec(
            "refiner_response", "refiner", "refine_response",
            "culture question response critique", "history missing_core knowledge",
        ),
    )
}

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False,
    trim_blocks=True, lstrip_blocks=True,
)


@dataclass(frozen=True)
class PromptTemplate:
    """A parsed template ready to render into chat messages."""

    spec: TemplateSpec
    text: str
    source: str  # "packaged" or the path of the user's override

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    def render(self, **variables: Any) -> list[dict[str, str]]:
        missing = self.spec.required - variables.keys()
        if missing:
            raise TypeError(f"template {self.name}: caller did not pass {sorted(missing)}")
        return [
            {"role": role, "content": compiled.render(**variables).strip()}
            for role, compiled in _compiled_sections(self.text, self.source)
        ]


@functools.lru_cache(maxsize=128)
def _compiled_sections(text: str, origin: str) -> tuple[tuple[str, jinja2.Template], ...]:
    """Compiled once per template text: compiling Jinja on every agent turn costs ~ms each."""
    return tuple((role, _ENV.from_string(body)) for role, body in split_sections(text, origin))


def split_sections(text: str, origin: str) -> list[tuple[str, str]]:
    """Split a template into ``(role, body)`` pairs at its ``[system]``/``[user]`` lines."""
    marks = list(SECTION.finditer(text))
    if not marks or text[: marks[0].start()].strip():
        raise UserInputError(f"{origin}: line 1: a template starts with a [system] or [user] line")
    sections = []
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
        sections.append((mark.group(1), text[mark.end() : end]))
    if not any(role == "user" for role, _ in sections):
        raise UserInputError(f"{origin}: a template needs a [user] section")
    return sections


def _line_of(text: str, needle: str) -> int:
    pattern = re.compile(r"\b" + re.escape(needle) + r"\b")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.search(line) and ("{{" in line or "{%" in line):
            return number
    return 1


# Tags that open a block closed by "end<tag>" ({% set x %}...{% endset %} only without "=").
_BLOCK_TAGS = {"if", "for", "macro", "call", "filter", "block", "with", "raw", "autoescape", "trans"}


def syntax_problem(text: str, origin: str, exc: jinja2.TemplateSyntaxError) -> str:
    """A syntax error at the line the user has to fix, not where Jinja noticed it.

    Jinja reports where parsing failed: for ``{{ critique`` (never closed) that is the next
    line with text, for a missing ``{% endif %}`` the end of the file. The line given is where
    the unclosed expression or block opened; Jinja's own line follows when it differs.
    """
    noticed = exc.lineno or 1
    line, why = _opening_line(text, noticed, exc.message or "")
    message = f"{origin}:{line}: template syntax error: {exc.message}"
    if line != noticed:
        message += f" ({why}; Jinja noticed it on line {noticed})"
    return message


def _opening_line(text: str, noticed: int, message: str) -> tuple[int, str]:
    """Where the unclosed ``{{``/``{%`` or block that broke the parse was opened."""
    open_tag: tuple[int, str] | None = None  # (line, "{{" or "{%") of a tag not yet closed
    blocks: list[tuple[str, int]] = []  # open block tags, innermost last
    expect_name = False
    try:
        for lineno, token, value in _ENV.lexer.tokeniter(text, "template"):
            if lineno > noticed:
                break
            if token in ("variable_begin", "block_begin"):
                open_tag, expect_name = (lineno, value.strip("-+")), token == "block_begin"
            elif token in ("variable_end", "block_end"):
                open_tag = None
            elif token == "name" and expect_name:
                expect_name = False
                if value in _BLOCK_TAGS:
                    blocks.append((value, lineno))
                elif value.startswith("end") and blocks and blocks[-1][0] == value[3:]:
                    blocks.pop()
            elif token != "whitespace":
                expect_name = False
    except jinja2.TemplateSyntaxError:
        pass  # the lexer stops where the parser did; what was seen up to there is enough
    if open_tag is not None and open_tag[0] < noticed:
        return open_tag[0], f"the '{open_tag[1]}' on line {open_tag[0]} is never closed"
    innermost = re.search(r"innermost block that needs to be closed is '(\w+)'", message)
    if innermost:
        for name, lineno in reversed(blocks):
            if name == innermost.group(1):
                return lineno, f"the '{name}' block opened on line {lineno} is never closed"
    return noticed, ""


def check_template(spec: TemplateSpec, text: str, origin: str) -> list[str]:
    """Every problem of one template as ``file:line: reason``; empty when it is fine."""
    try:
        split_sections(text, origin)
    except UserInputError as exc:
        return [str(exc)]
    try:
        parsed = _ENV.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return [syntax_problem(text, origin, exc)]
    used = meta.find_undeclared_variables(parsed)
    problems = [
        f"{origin}:{_line_of(text, name)}: unknown variable '{name}' "
        f"(allowed: {', '.join(sorted(spec.allowed))})"
        for name in sorted(used - spec.allowed)
    ]
    problems += [
        f"{origin}:1: required variable '{name}' is never used" for name in sorted(spec.required - used)
    ]
    return problems


def packaged_text(name: str) -> str:
    return resources.files("caredio.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")


def _read_override(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserInputError(f"{path}: template is not UTF-8 text") from None
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read template: {exc.strerror}") from None


def load_templates(user_dir: str | Path | None = None) -> dict[str, PromptTemplate]:
    """Load every template, user overrides first; raise on the first broken one."""
    templates, problems = collect_templates(user_dir)
    if problems:
        raise UserInputError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    return templates


def collect_templates(
    user_dir: str | Path | None = None,
) -> tuple[dict[str, PromptTemplate], list[str]]:
    """Load every template and collect all problems instead of stopping at the first."""
    directory = Path(user_dir) if user_dir else None
    if directory is not None and not directory.is_dir():
        raise UserInputError(f"{directory}: prompts directory not found")
    if directory is not None:
        for stray in sorted(directory.glob("*.txt")):
            if stray.stem not in SPECS:
                return {}, [f"{stray}: unknown template name (known: {', '.join(SPECS)})"]
    templates: dict[str, PromptTemplate] = {}
    problems: list[str] = []
    for name, spec in SPECS.items():
        override = directory / f"{name}.txt" if directory else None
        if override is not None and override.exists():
            text, source = _read_override(override), str(override)
        else:
            text, source = packaged_text(name), "packaged"
        origin = source if source != "packaged" else f"{name}.txt (packaged)"
        found = check_template(spec, text, origin)
        problems += found
        if not found:
            templates[name] = PromptTemplate(spec=spec, text=text, source=source)
    return templates, problems
