"""The ``caredio`` command line. Rich output lives here and nowhere else."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import click
import typer
from rich.console import Console
from rich.table import Table

from caredio import __version__
from caredio.errors import CaredioError, EndpointError, ModelOutputError, UserInputError

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # Chroma phones home unless told not to

console = Console()
err_console = Console(stderr=True)

cli = typer.Typer(
    name="caredio",
    help="Build small, high-value cultural alignment datasets: three LangGraph agents optimize "
    "culture-sensitive Q&A for representativeness and distinctiveness, scored from a Chroma "
    "memory of cultural knowledge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
STATE: dict[str, Any] = {"debug": False}


@cli.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        console.print(f"caredio {__version__}")
        raise typer.Exit()
    STATE["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for noisy in ("httpx", "chromadb", "sentence_transformers", "urllib3", "openai", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)


@cli.command("topics")
def topics_command(
    as_json: bool = typer.Option(False, "--json", help="Print the taxonomy as JSON."),
    extra: str = typer.Option(None, "--extra", help="JSON file with more topics to add."),
) -> None:
    """List the cultural topic taxonomy (id, name, description)."""
    from caredio.topics import load_topics

    topics = load_topics(extra)
    if as_json:
        print(json.dumps([t.to_dict() for t in topics], indent=2, ensure_ascii=False))
        return
    table = Table(title=f"{len(topics)} cultural topics")
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("name")
    table.add_column("description")
    for topic in topics:
        table.add_row(topic.id, topic.name, topic.description)
    console.print(table)


def _register() -> None:
    from caredio.cli import eval_cmd, llm_cmd, memory_cmd, prompts_cmd, run_cmd, tools_cmd

    run_cmd.register(cli)
    memory_cmd.register(cli)
    prompts_cmd.register(cli)
    llm_cmd.register(cli)
    tools_cmd.register(cli)
    eval_cmd.register(cli)


_register()


def app() -> None:
    """Entry point: maps the error taxonomy to exit codes (2 bad input, 1 anything else)."""
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = cli(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserInputError as exc:
        _fail(f"error: {exc}", 2, exc)
    except (EndpointError, ModelOutputError, CaredioError) as exc:
        _fail(f"error: {exc}", 1, exc)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last resort: one line and exit 1, traceback with --debug
        _fail(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", 1, exc)


def _fail(message: str, code: int, exc: BaseException) -> None:
    if STATE["debug"]:
        err_console.print_exception()
    err_console.print(message, markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


if __name__ == "__main__":
    app()
