"""``caredio prompts list|show|init|check|diff|try``: see, copy out, validate, compare and try templates."""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.syntax import Syntax
from rich.table import Table

from caredio.cli.consoles import console, err_console
from caredio.cli.options import default

prompts_app = typer.Typer(help="The prompt templates: list, show, copy out for editing, check, diff, try on a recorded sample.",
                          no_args_is_help=True, rich_markup_mode="rich")


@prompts_app.command("list")
def list_command(
    directory: Path = typer.Option(None, "--dir", metavar="DIR", help="User directory of overrides to include." + default("none: the packaged templates")),
) -> None:
    """Every template: name, variables (optional ones in brackets), where it comes from, hash."""
    from caredio.prompts import load_templates

    templates = load_templates(directory)
    table = Table(title="Prompt templates (name = agent_step)")
    # The name is what `prompts show` needs and the hash what a trace shows: never cut.
    table.add_column("name", no_wrap=True, min_width=max(len(name) for name in templates))
    table.add_column("variables (optional in brackets)", ratio=1)
    table.add_column("source", overflow="fold")
    table.add_column("hash", no_wrap=True, min_width=12)
    for name, template in templates.items():
        spec = template.spec
        variables = ", ".join(sorted(spec.required))
        if spec.optional:
            variables += " [" + ", ".join(sorted(spec.optional)) + "]"
        table.add_row(name, variables, template.source, template.hash)
    console.print(table, markup=False)


@prompts_app.command("show")
def show_command(
    name: str = typer.Argument(..., metavar="NAME", help="Template name (see `caredio prompts list`)."),
    directory: Path = typer.Option(None, "--dir", metavar="DIR", help="User directory of overrides." + default("none: the packaged templates")),
) -> None:
    """Print one template: highlighted on a terminal, else the file byte for byte (safe to redirect)."""
    from importlib import resources

    from caredio.errors import UserInputError
    from caredio.prompts import SPECS, load_templates

    if name not in SPECS:
        raise UserInputError(f"prompts show: unknown template '{name}' (known: {', '.join(SPECS)})")
    template = load_templates(directory)[name]
    if not console.is_terminal:
        # `prompts show NAME > my.txt` must give the file back unchanged: no header, no
        # re-wrapping to the console width, no padding.
        packaged = resources.files("caredio.prompts").joinpath(f"{name}.txt")
        data = packaged.read_bytes() if template.source == "packaged" else Path(template.source).read_bytes()
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    console.print(f"# {name} ({template.source}, hash {template.hash})", markup=False)
    console.print(Syntax(template.text, "jinja", word_wrap=True))


@prompts_app.command("init")
def init_command(directory: Path = typer.Argument(..., metavar="DIR", help="Directory to copy the templates into.")) -> None:
    """Copy every packaged template into DIR for editing (existing files are kept)."""
    from caredio.prompts import SPECS, packaged_text

    directory.mkdir(parents=True, exist_ok=True)
    for name in SPECS:
        target = directory / f"{name}.txt"
        if target.exists():
            print(f"kept     {target}")
            continue
        target.write_text(packaged_text(name), encoding="utf-8")
        print(f"written  {target}")
    print(f"edit them, then: caredio prompts check {directory} && caredio run --prompts {directory} ...")


@prompts_app.command("check")
def check_command(directory: Path = typer.Argument(None, metavar="DIR", help="User directory of templates." + default("the packaged templates"))) -> None:
    """Parse every template; report unknown or missing variables with file and line (exit 2)."""
    from caredio.prompts import collect_templates

    templates, problems = collect_templates(directory)
    for problem in problems:
        err_console.print(problem, markup=False, highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
    print(f"{len(templates)} templates OK")


@prompts_app.command("diff")
def diff_command(directory: Path = typer.Argument(..., metavar="DIR", help="User directory to compare with the packaged templates.")) -> None:
    """Unified diff of user templates against the packaged ones."""
    from caredio.errors import UserInputError
    from caredio.prompts import SPECS, packaged_text

    if not directory.is_dir():
        raise UserInputError(f"{directory}: prompts directory not found")
    changed = 0
    for name in SPECS:
        user = directory / f"{name}.txt"
        if not user.exists():
            continue
        packaged = packaged_text(name).splitlines(keepends=True)
        mine = user.read_text(encoding="utf-8").splitlines(keepends=True)
        diff = list(difflib.unified_diff(packaged, mine, f"packaged/{name}.txt", str(user)))
        if diff:
            changed += 1
            print("".join(diff), end="" if diff[-1].endswith("\n") else "\n")
    print(f"{changed} template(s) differ from the packaged ones")


@prompts_app.command("try")
def try_command(
    name: str = typer.Argument(..., metavar="TEMPLATE", help="Template name (see `caredio prompts list`)."),
    run_dir: Path = typer.Option(..., "--run", metavar="RUN_DIR", help="The run whose recorded inputs the template is tried on."),
    sample: str = typer.Option(..., "--sample", metavar="SAMPLE_ID", help="A sample of that run (see plan.jsonl or `caredio trace`)."),
    round_: int = typer.Option(None, "--round", metavar="N", help="The round whose step is tried." + default("the first round the sample took that step in")),
    prompts: Path = typer.Option(None, "--prompts", metavar="DIR", help="Your edited templates, as `caredio run --prompts` takes them." + default("the packaged templates")),
    base_url: str = typer.Option(None, "--base-url", metavar="URL", help="Another endpoint than the run's." + default("the run's (the embedded server when it used that)")),
    model: str = typer.Option(None, "--model", metavar="NAME", help="Another model than the run's." + default("the run's")),
    show_prompt: bool = typer.Option(False, "--show-prompt", help="Also print the rendered messages."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Render a template with the inputs one recorded sample had at one step, send it once, and
    print the reply, the output checks' verdict and (for an answer) its scores, beside the run's."""
    from caredio.tools.prompt_try import try_template

    tried = try_template(run_dir, name, sample, round_, prompts, base_url, model)
    if as_json:
        print(json.dumps(_tried_record(tried), ensure_ascii=False, indent=2))
        return
    _print_tried(tried, show_prompt)


def _tried_record(tried: Any) -> dict[str, Any]:
    return {"template": tried.template.name, "source": tried.template.source, "hash": tried.template.hash,
            "run_hash": tried.run_template.hash, "sample_id": tried.sample_id, "round": tried.round,
            "endpoint": tried.endpoint, "model": tried.model, "notes": tried.notes,
            "run_version": tried.run_version,
            "calls": [{"inputs_exact": o.call.exact, "inputs_difference": o.call.difference or None,
                       "messages": o.messages, "reply": o.reply, "parsed": o.parsed, "verdict": o.verdict,
                       "scores": o.scores, "seconds": o.seconds,
                       "run_output": (o.call.run_turn or {}).get("output"),
                       "run_parsed": (o.call.run_turn or {}).get("parsed")} for o in tried.outcomes]}


def _print_tried(tried: Any, show_prompt: bool) -> None:
    say = lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    template = tried.template
    changed = "unchanged" if template.hash == tried.run_template.hash else f"the run's was {tried.run_template.hash}"
    say(f"{template.name} ({template.source}, hash {template.hash}; {changed}) on {tried.sample_id}, "
        f"round {tried.round}, via {tried.endpoint} model {tried.model}")
    for outcome in tried.outcomes:
        call, turn = outcome.call, outcome.call.run_turn or {}
        culture = call.variables.get("culture")
        console.rule(f"{culture}" if len(tried.outcomes) > 1 else "")
        say("inputs: " + ("exactly the run's (its template renders them into what it sent)" if call.exact
                          else f"rebuilt, but not exactly the run's: {call.difference}"))
        if show_prompt:
            for message in outcome.messages:
                say(f"[{message['role']}]\n{message['content']}")
        say(f"reply ({outcome.seconds} s): {outcome.reply}")
        say(f"checks: {outcome.verdict}")
        run_parsed = turn.get("parsed")
        say(f"the run had: {json.dumps(run_parsed, ensure_ascii=False) if run_parsed else turn.get('output', '-')}")
        if outcome.scores is not None:
            _print_scores(outcome.scores, tried.run_version)
    for note in tried.notes:
        say(f"note: {note}")


def _print_scores(scores: dict[str, Any], version: Any) -> None:
    from caredio.cli.evidence_view import evidence_ids, evidence_lines, legend
    from caredio.memory.contents import item_texts

    def line(values: Any) -> str:
        return (f"R {values['representativeness']:.3f}  D {values['distinctiveness']:.3f}  "
                f"J {values['objective']:.3f}")

    ran = f"   (the run's version: {line(version)})" if version else ""
    console.print(f"scores: {line(scores)}{ran}", markup=False, highlight=False, soft_wrap=True)
    if scores.get("flags"):
        console.print(f"flags: {', '.join(scores['flags'])}", markup=False)
    if scores.get("evidence"):
        texts = item_texts(None, evidence_ids(scores["evidence"]))
        for text in evidence_lines(scores["evidence"], scores["response"], texts):
            console.print(text)
        console.print(legend())


def register(cli: typer.Typer) -> None:
    cli.add_typer(prompts_app, name="prompts")
