"""``caredio run`` and ``caredio resume``: the live display and the end-of-run summary."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

DEMO = {
    "cultures": ["Japan", "South Korea"],
    "topics": ["greetings_etiquette", "gift_giving"],
    "samples_per_topic": 1,
    "loop": {"max_rounds": 2},
}


class RunDisplay:
    """Progress per culture, a running mean of R/D/J and token counts; plain lines off a TTY."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.live_mode = console.is_terminal and not quiet
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.planned = 0
        self.done = 0
        self.failed = 0
        self.scores: list[tuple[float, float, float]] = []
        self.calls = 0
        self.retries = 0
        self.tokens = [0, 0]
        self.first_best: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
        self.progress = Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console)
        self.tasks: dict[str, TaskID] = {}
        self.per_culture: dict[str, int] = defaultdict(int)
        self.live: Live | None = None

    def __enter__(self) -> RunDisplay:
        if self.live_mode:
            self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(None, None, None)

    def _render(self) -> Group:
        line = Text(f"samples {self.done}/{self.planned}  failed {self.failed}  ")
        if self.scores:
            n = len(self.scores)
            means = [sum(s[i] for s in self.scores) / n for i in range(3)]
            line.append(f"mean R {means[0]:.2f}  D {means[1]:.2f}  J {means[2]:.2f}  ({n} versions)")
        eta = ""
        if self.done and self.planned > self.done:
            per = (time.monotonic() - self.started) / self.done
            eta = f"  remaining ~{per * (self.planned - self.done):.0f}s"
        line.append(f"\ncalls {self.calls} (retries {self.retries})  tokens in {self.tokens[0]} "
                    f"out {self.tokens[1]}  elapsed {time.monotonic() - self.started:.0f}s{eta}")
        return Group(self.progress, line)

    def _task(self, culture: str) -> TaskID:
        if culture not in self.tasks:
            self.tasks[culture] = self.progress.add_task(culture, total=0)
        return self.tasks[culture]

    def _row(self, culture: str) -> None:
        """One more sample of this culture is under way (or found finished on resume)."""
        self.per_culture[culture] += 1
        self.progress.update(self._task(culture), total=self.per_culture[culture])

    def _plain(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False, highlight=False)

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        with self.lock:
            if kind == "planned":
                self.planned = data["planned"]
                self._plain(f"planned {self.planned} samples")
            elif kind == "sample_started":
                self._row(data["culture"])
            elif kind == "version":
                self.scores.append((data["representativeness"], data["distinctiveness"], data["objective"]))
                self._plain(f"{data['sample_id']} round {data['round']} ({data['step']}): "
                            f"R={data['representativeness']:.3f} D={data['distinctiveness']:.3f} "
                            f"J={data['objective']:.3f}")
            elif kind in ("sample_done", "sample_skipped"):
                self.done += 1
                self.first_best[data["culture"]].append((data["first"], data["best"]))
                if kind == "sample_skipped":
                    self._row(data["culture"])
                self.progress.advance(self._task(data["culture"]))
                self._plain(f"{data['sample_id']} done: best J={data['best']['objective']:.3f} "
                            f"(round {data['best']['round']})")
            elif kind == "turn":
                self.calls += 1
                self.retries += int(data["retries"] or 0)
                self.tokens[0] += int(data["input_tokens"] or 0)
                self.tokens[1] += int(data["output_tokens"] or 0)
            elif kind == "sample_failed":
                self.failed += 1
                self._plain(f"{data['sample_id']} FAILED: {data['error']}")
            if self.live is not None:
                self.live.update(self._render())

    def summary_table(self) -> Table:
        table = Table(title="Per culture: first version -> best version")
        for column in ("culture", "samples", "R first", "R best", "D first", "D best", "J first", "J best"):
            table.add_column(column, justify="left" if column == "culture" else "right")
        for culture, pairs in sorted(self.first_best.items()):
            def mean(which: int, key: str, rows: list[tuple[dict[str, Any], dict[str, Any]]] = pairs) -> str:
                return f"{sum(p[which][key] for p in rows) / len(rows):.3f}"
            table.add_row(culture, str(len(pairs)),
                          mean(0, "representativeness"), mean(1, "representativeness"),
                          mean(0, "distinctiveness"), mean(1, "distinctiveness"),
                          mean(0, "objective"), mean(1, "objective"))
        return table


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


def _interrupted(console: Console, run_dir: Path) -> None:
    """Ctrl-C: what is done is on disk; say how to continue."""
    console.print("interrupted; finished samples are saved.", markup=False)
    if (run_dir / "config.json").exists():
        console.print(f"to continue: caredio resume {run_dir}", markup=False)
    raise typer.Exit(130)


def register(cli: typer.Typer) -> None:
    @cli.command("run")
    def run_command(
        cultures: str = typer.Option(None, "--cultures", help="Comma-separated target cultures, e.g. 'Japan,South Korea'."),
        topics: str = typer.Option(None, "--topics", help="Comma-separated topic ids (see `caredio topics`)."),
        samples_per_topic: int = typer.Option(None, "--samples-per-topic", help="Samples per culture and topic."),
        max_rounds: int = typer.Option(None, "--max-rounds", help="Refinement rounds at most per sample."),
        out: str = typer.Option(None, "--out", help="Parent directory of run directories [default: runs]."),
        run_id: str = typer.Option(None, "--run-id", help="Name of the run directory [default: timestamp]."),
        config: Path = typer.Option(None, "--config", help="TOML config file (flags win over it, env wins over it)."),
        memory: str = typer.Option(None, "--memory", help="Memory directory [default: .caredio/memory]; ':memory:' for an ephemeral one."),
        memory_url: str = typer.Option(None, "--memory-url", help="Chroma server URL instead of a local directory."),
        contrast: str = typer.Option(None, "--contrast", help="Related cultures: 'auto' (nearest by memory centroid) or a comma-separated list."),
        base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint; unset = embedded llama.cpp server. Key from $OPENAI_API_KEY (or llm.api_key_env)."),
        model: str = typer.Option(None, "--model", help="Model name for every role (per-role models in the config)."),
        gguf: str = typer.Option(None, "--gguf", help="GGUF file for the embedded server [default: SmolLM2-135M-Instruct]."),
        concurrency: int = typer.Option(None, "--concurrency", help="LLM requests in flight at most [default: 4]."),
        prompts: str = typer.Option(None, "--prompts", help="Directory of prompt template overrides."),
        strategy: str = typer.Option(None, "--strategy", help="How samples are made: loop (the three agents) [default], or a baseline: one-shot, best-of-n."),
        best_of_n: int = typer.Option(None, "--best-of-n", help="Answers per sample for best-of-n [default: the loop's calls per sample at --max-rounds, less question and contrast calls]."),
        judge_split: float = typer.Option(None, "--judge-split", help="Share of each culture's knowledge (by item id) held out for a judge the loop never sees, e.g. 0.3 [default: 0, no judge]."),
        seed: int = typer.Option(None, "--seed", help="Sampling seed sent with every LLM request (llm.seed), for reproducible runs where the endpoint honours it."),
        demo: bool = typer.Option(False, "--demo", help="Small built-in job: Japan and South Korea (contrasted with their nearest cultures in memory) x 2 topics x 1 sample, 2 rounds."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display; only the summary."),
        executor: str = typer.Option(None, "--executor", help="Where samples run: 'local' (this process) [default] or 'ray' (Ray workers; needs caredio[scale])."),
        ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster to join (host:6379 or ray://host:10001); unset = a local Ray with --ray-workers workers."),
        ray_workers: int = typer.Option(None, "--ray-workers", help="Sample workers (Ray actors) [default: 2]."),
        checkpoint_url: str = typer.Option(None, "--checkpoint-url", help="Postgres checkpoint store (postgresql://user@host/db; password from the URL is never stored) [default: checkpoints.sqlite in the run directory]."),
        otlp_endpoint: str = typer.Option(None, "--otlp-endpoint", help="Export agent turns as OpenTelemetry spans to this OTLP/gRPC collector (e.g. http://localhost:4317)."),
    ) -> None:
        """Optimize culture-sensitive conversations and write a run directory."""
        from caredio.cli.main import console
        from caredio.config import load_settings
        from caredio.runner import new_run_id, start_run

        def split(value: str | None) -> list[str] | None:
            return [v.strip() for v in value.split(",") if v.strip()] if value else None

        flags: dict[str, Any] = dict(DEMO) if demo else {}
        flags = {**flags, "loop": dict(flags.get("loop", {}))}
        contrast_value: Any = None
        if contrast:
            contrast_value = "auto" if contrast.strip() == "auto" else split(contrast)
        flags.update({k: v for k, v in {
            "cultures": split(cultures), "topics": split(topics), "samples_per_topic": samples_per_topic,
            "out": out, "run_id": run_id, "concurrency": concurrency, "prompts_dir": prompts,
            "contrast": contrast_value, "strategy": strategy, "best_of_n": best_of_n,
            "executor": executor, "ray_address": ray_address,
            "ray_workers": ray_workers, "checkpoint_url": checkpoint_url,
        }.items() if v is not None})
        flags["telemetry"] = {"otlp_endpoint": otlp_endpoint}
        if judge_split is not None:
            flags["judge"] = {"split": judge_split}
        if max_rounds is not None:
            flags["loop"]["max_rounds"] = max_rounds
        flags["llm"] = {"base_url": base_url, "model": model, "gguf": gguf, "seed": seed}
        flags["memory"] = {"path": memory, "url": memory_url}
        settings = load_settings(config, **flags)
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
        run_dir: Path = typer.Argument(..., help="The run directory to finish."),
        base_url: str = typer.Option(None, "--base-url", help="Use another endpoint than the run's config."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
        executor: str = typer.Option(None, "--executor", help="Run the rest 'local' or on 'ray' [default: as the run was started]."),
        ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster to join for this resume."),
        checkpoint_url: str = typer.Option(None, "--checkpoint-url", help="The run's Postgres checkpoint store, when its URL held a password (never stored)."),
    ) -> None:
        """Finish an interrupted run: done samples are kept, the others continue from their last step."""
        from caredio.cli.main import console
        from caredio.runner import resume_run

        display = RunDisplay(console, quiet=quiet)
        try:
            with display:
                record = resume_run(run_dir, display.on_event, base_url=base_url, executor=executor,
                                    ray_address=ray_address, checkpoint_url=checkpoint_url)
        except KeyboardInterrupt:
            _interrupted(console, run_dir)
        _finish(console, display, run_dir, record)
