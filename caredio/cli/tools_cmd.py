"""``caredio trace|select|export|report``: the tools that read a run directory.

They never change what the graph wrote: ``select`` rewrites only ``selected.jsonl``, ``export``
writes where ``--out`` says, ``report`` writes ``report.html`` and PNGs. Every check on the
input runs before the first byte is written.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from caredio.cli.consoles import console, err_console
from caredio.cli.options import default

RUN_DIR = typer.Argument(..., metavar="RUN_DIR", help="A run directory (made by `caredio run`).")


def trace_command(
    run_dir: Path = RUN_DIR,
    sample: str = typer.Option(
        None, "--sample", metavar="SAMPLE_ID",
        help="Only this sample; also shows its trajectory with word diffs." + default("every sample"),
    ),
    agent: str = typer.Option(
        None, "--agent", metavar="AGENT",
        help="Only turns of culture_expert, contrast_critic or refiner." + default("every agent"),
    ),
    round_: int = typer.Option(
        None, "--round", metavar="N",
        help="Only turns of this round (0 = the first draft)." + default("every round"),
    ),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new turns while the run is going."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the turns as JSON lines (all fields)."
    ),
    full: bool = typer.Option(
        False, "--full", help="Show every prompt message in full, not a head."
    ),
) -> None:
    """Agent turns: template and hash, model, tokens, latency, retries, prompt, output, scores."""
    from caredio.cli import trace_view
    from caredio.errors import UserInputError
    from caredio.rundir.reader import open_run

    trace_view.check_filters(agent, round_)
    run = open_run(run_dir)
    turns = [t for t in run.turns if trace_view.matches(t, sample, agent, round_)]
    if (
        sample is not None
        and not follow
        and not turns
        and not any(v.get("sample_id") == sample for v in run.trajectories)
    ):
        known = sorted({str(t.get("sample_id")) for t in run.turns})
        raise UserInputError(
            f"--sample: no sample '{sample}' in {run_dir / 'trace.jsonl'}"
            f" (known: {', '.join(known[:8]) or 'none'})"
        )
    if follow:
        seen = 0

        def emit(turn: Mapping[str, Any]) -> None:
            nonlocal seen
            if not trace_view.matches(turn, sample, agent, round_):
                return
            seen += 1
            if as_json:
                print(json.dumps(turn, ensure_ascii=False), flush=True)
            else:
                console.print(
                    trace_view.turn_panel(turn, open_run(run_dir).versions_by_key(), full)
                )

        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends following, not an error
            trace_view.follow(run_dir, emit)
        err_console.print(f"{seen} turns · run status: {open_run(run_dir).status}")
        return
    if as_json:
        for turn in turns:
            print(json.dumps(turn, ensure_ascii=False))
        return
    shown = trace_view.render(console, run, turns, full, sample)
    console.print(trace_view.summary_line(run, shown), style="dim", markup=False, highlight=False)


def select_command(
    run_dir: Path = RUN_DIR,
    budget: int = typer.Option(
        ..., "--budget", metavar="N", help="How many samples to pick (per culture with --per-culture)."
    ),
    per_culture: bool = typer.Option(
        True, "--per-culture/--global", help="Budget per culture or over all."
    ),
    diversity: float = typer.Option(
        0.5, "--diversity", metavar="γ", help="Weight of the similarity to what is already picked."
    ),
    duplicate_threshold: float = typer.Option(
        0.95,
        "--duplicate-threshold",
        metavar="SIM",
        help="Cosine similarity at which two samples are near-duplicates.",
    ),
    reviewed_only: bool = typer.Option(
        False, "--reviewed-only", help="Only samples a reviewer kept (caredio review); rejected ones are always left out."
    ),
) -> None:
    """Pick the best samples (objective J) with diversity; write selected.jsonl."""
    from caredio.review.binding import describe
    from caredio.tools.export import select_run

    result = select_run(run_dir, budget, per_culture, diversity, duplicate_threshold,
                        reviewed_only=reviewed_only)
    if result.review:
        console.print(f"review: {describe(result.review)}", markup=False, highlight=False)
    table = Table(
        title=f"selected {len(result.picks)} of {result.candidates} samples "
        f"({'per culture' if per_culture else 'global'} budget {budget}, γ={diversity})"
    )
    for column in ("#", "sample", "culture", "J", "MMR score", "nearest already picked", "sim"):
        table.add_column(
            column, justify="right" if column in ("#", "J", "MMR score", "sim") else "left"
        )
    for rank, pick in enumerate(result.picks, start=1):
        table.add_row(
            str(rank),
            pick.sample_id,
            pick.group,
            f"{pick.objective:.3f}",
            f"{pick.score:.3f}",
            pick.nearest_id or "—",
            f"{pick.nearest_similarity:.3f}" if pick.nearest_id else "—",
        )
    console.print(table)
    for skip in result.skipped:
        console.print(
            f"skipped {skip.sample_id}: near-duplicate of {skip.nearest_id} "
            f"(similarity {skip.nearest_similarity:.3f})",
            markup=False,
            highlight=False,
        )
    console.print(
        f"{result.prior} samples from earlier runs in memory were compared against; "
        f"wrote {result.path}",
        markup=False,
        highlight=False,
    )


def export_command(
    run_dir: Path = RUN_DIR,
    fmt: str = typer.Option(
        ..., "--format", metavar="FORMAT",
        help="openai (chat JSONL), sharegpt (JSON), hf (a Hugging Face datasets folder) or trl (a folder: "
        "prompt-completion JSONL for TRL's SFTTrainer and a LoRA recipe).",
    ),
    out: Path = typer.Option(
        None, "--out", metavar="PATH",
        help="Where to write." + default("RUN_DIR/export/openai.jsonl, sharegpt.json, hf or trl"),
    ),
    selected: bool = typer.Option(
        False, "--selected", help="Export selected.jsonl instead of dataset.jsonl."
    ),
    reviewed_only: bool = typer.Option(
        False, "--reviewed-only", help="Only samples a reviewer kept (caredio review); rejected ones are always left out."
    ),
) -> None:
    """Write the dataset in a fine-tuning format (the HF folder gets a dataset card)."""
    from caredio.review.binding import describe
    from caredio.tools.export import export

    path, count, review = export(run_dir, fmt, out, selected, reviewed_only)
    print(f"exported {count} samples as {fmt} to {path}" + (f" (review: {describe(review)})" if review else ""))


def report_command(run_dir: Path = RUN_DIR) -> None:
    """Write report.html (self-contained) and PNG figures into the run directory."""
    from caredio.tools.report import write_report

    html, figures = write_report(run_dir)
    for figure in figures:
        print(f"figure   {figure}")
    print(f"report   {html}")


def register(cli: typer.Typer) -> None:
    """Commands that read a finished (or running) run directory."""
    cli.command("trace")(trace_command)
    cli.command("select")(select_command)
    cli.command("export")(export_command)
    cli.command("report")(report_command)
