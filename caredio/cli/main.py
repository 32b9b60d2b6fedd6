"""The ``caredio`` command line. Rich output lives here and nowhere else."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import typer
from rich.table import Table

from caredio import __version__
from caredio.cli.consoles import console, err_console
from caredio.cli.options import default, tidy_help
from caredio.errors import CaredioError, EndpointError, ModelOutputError, UserInputError

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # Chroma phones home unless told not to

cli = typer.Typer(
    name="caredio",
    help="Build small, high-value cultural alignment datasets: three LangGraph agents optimize "
    "culture-sensitive Q&A for representativeness and distinctiveness, scored from a Chroma "
    "memory of cultural knowledge.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",  # pinned: older typer defaults to none, and help text is written as markup
    pretty_exceptions_enable=False,
)
STATE: dict[str, Any] = {"debug": False}


def _print_version(value: bool) -> None:
    # Eager, so it runs before click asks for a command: `caredio --version` needs none.
    if value:
        print(f"caredio {__version__}")
        raise typer.Exit()


@cli.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 expose_value=False, help="Print the version and exit."),
) -> None:
    STATE["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for noisy in ("httpx", "chromadb", "sentence_transformers", "urllib3", "openai", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)


@cli.command("topics")
def topics_command(
    as_json: bool = typer.Option(False, "--json", help="Print the taxonomy as JSON."),
    extra: str = typer.Option(None, "--extra", metavar="FILE",
                              help="JSON file of more topics to add to the taxonomy." + default("none")),
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
    from caredio.cli import (
        doctor_cmd,
        eval_cmd,
        llm_cmd,
        memory_cmd,
        prompts_cmd,
        review_cmd,
        run_cmd,
        tools_cmd,
    )

    run_cmd.register(cli)
    memory_cmd.register(cli)
    prompts_cmd.register(cli)
    llm_cmd.register(cli)
    tools_cmd.register(cli)
    eval_cmd.register(cli)
    doctor_cmd.register(cli)
    review_cmd.register(cli)


_register()


def build_command() -> Any:
    """The click command tree of ``caredio``, with the help conventions applied."""
    return tidy_help(typer.main.get_command(cli))


def _click_class(name: str) -> type[Exception]:
    """A click exception class as typer raises it.

    typer >= 0.2x carries its own copy of click (so ``click.UsageError`` would not match what
    it raises), older typer uses click itself; its public ``BadParameter`` leads to both.
    """
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


USAGE_ERROR = _click_class("UsageError")
CLICK_EXCEPTION = _click_class("ClickException")


def usage_line(exc: Exception) -> str:
    """A usage error (unknown command or option, missing or bad value) as one line in words."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "caredio"
    message = " ".join(str(exc.format_message()).split())  # type: ignore[attr-defined]
    return f"error: {command}: {message} (see '{command} --help')"


def app() -> None:
    """Entry point: maps the error taxonomy to exit codes (2 bad input, 1 anything else)."""
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = build_command().main(prog_name="caredio", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserInputError as exc:
        _fail(f"error: {exc}", 2, exc)
    except (EndpointError, ModelOutputError, CaredioError) as exc:
        _fail(f"error: {exc}", 1, exc)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except USAGE_ERROR as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `caredio` or `caredio memory`
            exc.show()  # type: ignore[attr-defined]
            sys.exit(0)
        # A mistyped command or flag is bad input: one line, exit 2, like any other.
        _fail(usage_line(exc), 2, exc)
    except CLICK_EXCEPTION as exc:
        _fail(f"error: {' '.join(str(exc.format_message()).split())}",  # type: ignore[attr-defined]
              int(getattr(exc, "exit_code", 1)), exc)
    except (typer.Abort, KeyboardInterrupt):
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
