"""``caredio memory ingest|stats`` and ``caredio score``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

memory_app = typer.Typer(help="Ingest knowledge into a cultural memory and inspect it.", no_args_is_help=True)

MEMORY_HELP = "Memory directory [default: .caredio/memory]; ':memory:' for an ephemeral one."


def _settings(memory: str | None, memory_url: str | None) -> Any:
    from caredio.config import load_settings
    from caredio.threads import configure_threads

    settings = load_settings(memory={"path": memory, "url": memory_url})
    configure_threads(settings.threads)
    return settings


def _open(memory: str | None, memory_url: str | None) -> Any:
    from caredio.runner import open_memory

    return open_memory(_settings(memory, memory_url))


@memory_app.command("ingest")
def ingest_command(
    files: list[Path] = typer.Argument(
        ..., help="Knowledge files: JSONL, CSV, or BLEnD {Country}_data.json (several allowed)."),
    fmt: str = typer.Option(None, "--format", help="jsonl, csv or blend [default: from the extension]."),
    culture: str = typer.Option(None, "--culture", help="Culture of every item (overrides the file's field)."),
    memory: str = typer.Option(None, "--memory", help=MEMORY_HELP),
    memory_url: str = typer.Option(None, "--memory-url", help="Chroma server URL."),
) -> None:
    """Add knowledge items to memory; re-ingesting the same file adds nothing twice."""
    import time

    from caredio.cli.main import err_console
    from caredio.memory.ingest import read_knowledge

    # Every file is read and validated before anything is written.
    batches = [(file, read_knowledge(file, fmt, culture)) for file in files]
    store = _open(memory, memory_url)
    for file, items in batches:
        started = time.monotonic()
        with err_console.status(f"embedding and storing {len(items)} items from {file}"):
            added = store.add_knowledge(items)
        seconds = time.monotonic() - started
        cultures = sorted({item.culture for item in items})
        rate = f" ({added / seconds:.0f} items/s)" if added and seconds > 0 else ""
        print(f"{file}: {len(items)} items read, {added} new, {len(items) - added} already present; "
              f"cultures: {', '.join(cultures)}{rate}")


@memory_app.command("stats")
def stats_command(
    memory: str = typer.Option(None, "--memory", help=MEMORY_HELP),
    memory_url: str = typer.Option(None, "--memory-url", help="Chroma server URL."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Items per culture, topics, weights and sources."""
    from caredio.cli.main import console

    stats = _open(memory, memory_url).stats()
    if as_json:
        print(json.dumps(stats, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"{stats['memory']}: {stats['knowledge_items']} knowledge items, "
                        f"{stats['samples']} accepted samples ({stats['embedding_backend']})")
    for column in ("culture", "items", "topics", "mean weight", "sources"):
        table.add_column(column)
    for culture, row in stats["cultures"].items():
        sources = ", ".join(f"{k} {v}" for k, v in sorted(row["sources"].items()))
        table.add_row(culture, str(row["items"]), str(row["topics"]), f"{row['mean_weight']:.2f}", sources)
    console.print(table)


def read_samples(path: Path) -> list[dict[str, Any]]:
    """Generic sample lines ``{culture, question, response}`` or this project's dataset lines."""
    from caredio.conversation import question_response
    from caredio.errors import UserInputError
    from caredio.memory.ingest import canonical_culture

    samples = []
    question: Any
    response: Any
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        try:
            lines = list(enumerate(handle, start=1))
        except UnicodeDecodeError:
            raise UserInputError(f"{path}: not UTF-8 text") from None
    for number, line in lines:
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{where}: not valid JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise UserInputError(f"{where}: expected a JSON object")
        if "messages" in record:
            meta = record.get("metadata") or {}
            messages = record["messages"]
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                raise UserInputError(f"{where}: field 'messages' must be a list of objects")
            if not isinstance(meta, dict):
                raise UserInputError(f"{where}: field 'metadata' must be an object")
            question, response = question_response(messages)
            culture, sample_id = meta.get("culture"), meta.get("sample_id")
        else:
            question, response = record.get("question") or "", record.get("response")
            culture, sample_id = record.get("culture"), record.get("id")
        if not isinstance(culture, str) or not culture:
            raise UserInputError(f"{where}: field 'culture' is missing")
        if not isinstance(response, str) or not response.strip():
            raise UserInputError(f"{where}: field 'response' is missing or empty")
        samples.append({"id": sample_id or f"line-{number}", "culture": canonical_culture(culture),
                        "question": question or "", "response": response})
    if not samples:
        raise UserInputError(f"{path}: no samples in the file")
    return samples


def register(cli: typer.Typer) -> None:
    cli.add_typer(memory_app, name="memory")

    @cli.command("score")
    def score_command(
        file: Path = typer.Argument(..., help="Samples: JSONL of {culture, question, response} or dataset lines."),
        memory: str = typer.Option(None, "--memory", help=MEMORY_HELP),
        memory_url: str = typer.Option(None, "--memory-url", help="Chroma server URL."),
        contrast: str = typer.Option("auto", "--contrast", help="'all', 'auto' (nearest cultures) or C1,C2."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per sample on stdout, input order."),
    ) -> None:
        """Score any dataset for representativeness and distinctiveness with the loop's own scorer."""
        from caredio.cli.main import console, err_console
        from caredio.memory.ingest import canonical_culture
        from caredio.memory.scoring import Scorer
        from caredio.runner import open_memory

        samples = read_samples(file)
        settings = _settings(memory, memory_url)
        store = open_memory(settings)
        scorer = Scorer(store, settings.scoring)  # the loop's scorer, with the configured knobs
        mode: Any = contrast if contrast in ("all", "auto") else [
            canonical_culture(c.strip()) for c in contrast.split(",") if c.strip()]
        rows = []
        for sample in samples:  # validate every culture before printing anything
            scorer.contrast_set(sample["culture"], mode)
        with err_console.status(f"scoring {len(samples)} samples"):
            scorer.warm([s["response"] for s in samples] + [s["question"] for s in samples if s["question"]])
            for sample in samples:
                cultures = scorer.contrast_set(sample["culture"], mode)
                result = scorer.score(sample["question"], sample["response"], sample["culture"], cultures)
                rows.append({"id": sample["id"], **result.to_dict()})
        if as_json:
            for row in rows:
                sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
            return
        table = Table(title=f"{file}: {len(rows)} samples")
        for column in ("id", "culture", "R", "D", "J", "predicted"):
            table.add_column(column)
        for row in rows:
            table.add_row(str(row["id"]), row["culture"], f"{row['representativeness']:.3f}",
                          f"{row['distinctiveness']:.3f}", f"{row['objective']:.3f}", row["predicted_culture"])
        console.print(table)
        means = Table(title="Per culture means")
        for column in ("culture", "samples", "R", "D", "J", "attributed correctly"):
            means.add_column(column)
        for culture in sorted({r["culture"] for r in rows}):
            group = [r for r in rows if r["culture"] == culture]
            def avg(key: str, group: list[dict[str, Any]] = group) -> str:
                return f"{sum(r[key] for r in group) / len(group):.3f}"
            correct = sum(r["predicted_culture"] == culture for r in group)
            means.add_row(culture, str(len(group)), avg("representativeness"), avg("distinctiveness"),
                          avg("objective"), f"{correct}/{len(group)}")
        console.print(means)
