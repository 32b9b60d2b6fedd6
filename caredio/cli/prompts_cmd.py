"""``caredio prompts list|show|init|check|diff``: see, copy out, validate and compare templates."""

from __future__ import annotations

import difflib
from pathlib import Path

import typer
from rich.syntax import Syntax
from rich.table import Table

prompts_app = typer.Typer(help="The prompt templates: list, show, copy out for editing, check, diff.",
                          no_args_is_help=True)


@prompts_app.command("list")
def list_command(
    directory: Path = typer.Option(None, "--dir", help="User directory of overrides to include."),
) -> None:
    """Every template: name, agent, step, variables and where it comes from."""
    from caredio.cli.main import console
    from caredio.prompts import load_templates

    table = Table(title="Prompt templates")
    for column in ("name", "agent", "step", "required", "optional", "source", "hash"):
        table.add_column(column)
    for name, template in load_templates(directory).items():
        spec = template.spec
        table.add_row(name, spec.agent, spec.step, ", ".join(sorted(spec.required)),
                      ", ".join(sorted(spec.optional)), template.source, template.hash)
    console.print(table)


@prompts_app.command("show")
def show_command(
    name: str = typer.Argument(..., help="Template name (see `caredio prompts list`)."),
    directory: Path = typer.Option(None, "--dir", help="User directory of overrides."),
) -> None:
    """Print one template."""
    from caredio.cli.main import console
    from caredio.errors import UserInputError
    from caredio.prompts import SPECS, load_templates

    if name not in SPECS:
        raise UserInputError(f"prompts show: unknown template '{name}' (known: {', '.join(SPECS)})")
    template = load_templates(directory)[name]
    console.print(f"# {name} ({template.source}, hash {template.hash})", markup=False)
    console.print(Syntax(template.text, "jinja", word_wrap=True))


@prompts_app.command("init")
def init_command(directory: Path = typer.Argument(..., help="Directory to copy the templates into.")) -> None:
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
def check_command(directory: Path = typer.Argument(None, help="User directory [default: packaged templates].")) -> None:
    """Parse every template; report unknown or missing variables with file and line (exit 2)."""
    from caredio.cli.main import err_console
    from caredio.prompts import collect_templates

    templates, problems = collect_templates(directory)
    for problem in problems:
        err_console.print(problem, markup=False, highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
    print(f"{len(templates)} templates OK")


@prompts_app.command("diff")
def diff_command(directory: Path = typer.Argument(..., help="User directory to compare with the packaged templates.")) -> None:
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


def register(cli: typer.Typer) -> None:
    cli.add_typer(prompts_app, name="prompts")
