"""The CLI as a new user first meets it: every --help, --version, mistyped commands and flags,
and the prompts listing. No model, no memory: these run the real entry point in process."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testing.cli import in_process_cli

# What typer prints when a parameter has no metavar: Python types and format-string braces.
RAW_PLACEHOLDER = re.compile(r"<(?:str|int|float|bool|path|text|list\[[^\]]*\]|[a-z_]+)>|\{[A-Za-z_]+\}")
HOLE = re.compile(r"\w [.;,](?:\s|$)")  # "directories ." — a default that vanished from a sentence


def _commands() -> Iterator[tuple[list[str], Any]]:
    from caredio.cli.main import build_command

    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(build_command(), [])


COMMANDS = [path for path, _ in _commands()]


def _help(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], width: int,
          path: list[str]) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    code, out, err = in_process_cli(monkeypatch, capsys)(*path, "--help")
    assert code == 0, (path, err)
    return out


def test_the_command_tree_is_complete() -> None:
    """The walk below must see every command, or the help checks prove nothing."""
    names = {" ".join(path) for path in COMMANDS}
    assert {"run", "resume", "topics", "score", "trace", "select", "export", "report", "memory ingest",
            "memory stats", "prompts list", "prompts show", "prompts init", "prompts check",
            "prompts diff", "local-llm serve"} <= names


@pytest.mark.parametrize("width", [80, 400])
def test_every_help_reads_as_sentences_without_raw_placeholders(
        width: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for path in COMMANDS:
        out = _help(monkeypatch, capsys, width, path)
        assert "Usage" in out
        assert not HOLE.search(out), (path, HOLE.search(out))
        assert not RAW_PLACEHOLDER.search(out), (path, RAW_PLACEHOLDER.search(out))


def test_every_option_shows_its_default(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """At 400 columns each option is one row; a value option that is not required names its
    default there (flags are off unless given, which needs no saying)."""
    checked = 0
    for path, command in _commands():
        out = _help(monkeypatch, capsys, 400, path)
        for param in command.params:
            if param.param_type_name != "option" or param.required or (
                    getattr(param, "is_flag", False) and not param.secondary_opts):
                continue
            flag = next(o for o in param.opts if o.startswith("--"))
            rows = [line for line in out.splitlines()
                    if re.match(rf"^│\s*\*?\s*{re.escape(flag)}(?![\w-])", line)]
            assert len(rows) == 1, (path, flag, out)
            assert "[default: " in rows[0], (path, flag, rows[0])
            checked += 1
    assert checked >= 30


def test_run_help_states_the_config_defaults(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The defaults written into the help are the ones the config really has."""
    from caredio.config.settings import Settings

    settings = Settings()
    out = _help(monkeypatch, capsys, 400, ["run"])
    expected = {
        "--cultures": ",".join(settings.cultures), "--topics": ",".join(settings.topics),
        "--samples-per-topic": str(settings.samples_per_topic),
        "--max-rounds": str(settings.loop.max_rounds), "--out": settings.out,
        "--concurrency": str(settings.concurrency), "--contrast": str(settings.contrast),
    }
    for flag, value in expected.items():
        row = next(line for line in out.splitlines() if re.match(rf"^│\s*{flag}\s", line))
        assert f"[default: {value}]" in row, (flag, row)


def test_version_prints_the_package_version(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from caredio import __version__

    code, out, err = in_process_cli(monkeypatch, capsys)("--version")
    assert (code, out.strip(), err) == (0, f"caredio {__version__}", "")


@pytest.mark.parametrize(("args", "words"), [
    (["rnu"], "No such command 'rnu'. Did you mean 'run'?"),
    (["run", "--no-such-flag"], "No such option: --no-such-flag"),
    (["resume"], "Missing argument 'RUN_DIR'"),
    (["run", "--max-rounds", "many"], "Invalid value for '--max-rounds'"),
    (["prompts", "shw"], "No such command 'shw'"),
])
def test_usage_errors_are_one_line_in_words_with_exit_2(
        args: list[str], words: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = in_process_cli(monkeypatch, capsys)(*args)
    assert code == 2, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: caredio") and words in err, err
    assert not re.search(r"UsageError|NoSuchOption|MissingParameter|BadParameter|Traceback", err)


@pytest.mark.parametrize("flag", ["--cultures", "--topics", "--contrast"])
def test_an_empty_list_is_bad_input_not_unset(flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "runs"
    code, _out, err = in_process_cli(monkeypatch, capsys)(
        "run", "--demo", flag, " , ", "--out", str(out_dir), "--memory", ":memory:")
    assert code == 2
    assert err.strip() == f"error: {flag}: empty list; give at least one value, comma-separated"
    assert not out_dir.exists()


@pytest.mark.parametrize("width", [80, 110])
def test_prompts_list_never_cuts_a_template_name(width: int, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from caredio.cli.consoles import console
    from caredio.prompts import SPECS

    monkeypatch.setattr(console, "width", width)
    code, out, _ = in_process_cli(monkeypatch, capsys)("prompts", "list")
    assert code == 0
    first_cells = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    assert set(SPECS) <= set(first_cells), first_cells


def test_prompts_show_off_a_terminal_is_the_file_byte_for_byte(tmp_path: Path) -> None:
    """`prompts show NAME > file` must not re-wrap, pad or add a header (a real pipe, not capsys)."""
    from importlib import resources

    def show(*args: str) -> bytes:
        return subprocess.run([sys.executable, "-m", "caredio.cli.main", "prompts", "show", *args],
                              capture_output=True, timeout=120, check=True,
                              env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"}).stdout

    packaged = resources.files("caredio.prompts").joinpath("refiner_response.txt").read_bytes()
    assert max(len(line) for line in packaged.splitlines()) > 80  # wrapping would show
    assert show("refiner_response") == packaged
    # An override with CRLF line ends and trailing spaces comes back unchanged too.
    folder = tmp_path / "prompts"
    folder.mkdir()
    edited = packaged.replace(b"\n", b"  \r\n")
    (folder / "refiner_response.txt").write_bytes(edited)
    assert show("refiner_response", "--dir", str(folder)) == edited


def test_no_command_module_imports_the_entry_point() -> None:
    """main.py registers the command modules; a command module that imported main back (as they
    did for `console`) closes an import circle. The consoles live in caredio.cli.consoles."""
    import ast

    import caredio.cli

    folder = Path(caredio.cli.__file__).parent
    modules = [path for path in folder.glob("*.py") if path.name != "main.py"]
    assert len(modules) >= 8  # the command modules, options, consoles, display
    circles = []
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (
                    node.module == "caredio.cli.main"
                    or (node.module == "caredio.cli" and any(a.name == "main" for a in node.names))):
                circles.append(f"{path.name}:{node.lineno}")
    assert circles == []
