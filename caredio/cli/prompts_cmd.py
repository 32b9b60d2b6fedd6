"""``caredio prompts list|show|init|check|diff``: see, copy out, validate and compare templates."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import typer
from rich.syntax import Syntax
from rich.table import Table

from caredio.cli.consoles import console, err_console
from caredio.cli.options import default

prompts_app = typer.Typer(help="The prompt templates: list, show, copy out for editing, check, diff.",
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


def register(cli: typer.Typer) -> None:
    cli.add_typer(prompts_app, name="prompts")
