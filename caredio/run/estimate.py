"""``caredio run --dry-run``: the plan and what it will cost, with no model called and nothing written.

The job is checked as a real run checks it (:func:`caredio.run.job.prepare`: bad input is the
same one line, exit 2) and planned as a real run plans it (auto contrast reads the memory's
centroids), but no endpoint is started or asked and no run directory is made.

LLM calls are agent turns, as ``trace.jsonl`` and run.json count them (a re-ask inside a turn
adds tokens, not a turn). Per sample, from the loop settings and the strategy
(graph/strategies.py): the *most* is :func:`loop_calls` at ``max_rounds``; the *least* the same
at ``min_rounds`` (both score thresholds met as early as allowed); for the baselines both are
exact (question, contrast answers, the answers). *Typical* comes from the earlier runs in
``--out``: each one's turns against its own "most", a share applied to this plan's most, and
their tokens per turn; with no earlier run it is the most (the loop rarely meets both
thresholds early) and tokens are not estimated. Knowledge of cultures memory lacks is
elicited before planning, which a dry run cannot do: such a culture's contrast set is unknown
and estimated at ``scoring.contrast_k`` related cultures.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caredio.config.settings import LoopSettings, Settings
from caredio.errors import UserInputError
from caredio.graph.strategies import candidates, loop_calls
from caredio.memory.embeddings import Embedder
from caredio.run.job import Job, prepare
from caredio.rundir.formats import PlanEntry, TraceLine
from caredio.rundir.reader import open_run

HISTORY_RUNS = 5  # the most recent completed runs in --out that typical figures are drawn from
ELICITED = "_memory"  # the sample id of knowledge-elicitation turns in a trace


@dataclass(frozen=True)
class Span:
    least: float
    typical: float
    most: float

    def scaled(self, factor: float) -> Span:
        return Span(self.least * factor, self.typical * factor, self.most * factor)


@dataclass
class Estimate:
    """What ``--dry-run`` prints."""

    samples: dict[str, dict[str, int]]  # culture -> topic -> samples
    contrast: dict[str, list[str] | None]  # culture -> related cultures (None: known after elicitation)
    elicited: list[str]  # cultures whose knowledge the expert would be asked for first
    calls: Span
    input_tokens: Span | None = None
    output_tokens: Span | None = None
    cost: Span | None = None
    history: list[str] = field(default_factory=list)  # the earlier runs typical figures came from
    share_of_most: float | None = None  # the earlier runs' turns against their own most
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def sample_calls(strategy: str, best_of_n: int | None, loop: LoopSettings, contrast: int,
                 ) -> tuple[int, int]:
    """(least, most) agent turns of one sample with ``contrast`` related cultures."""
    if strategy == "loop":
        least = loop_calls(loop.model_copy(update={"max_rounds": loop.min_rounds}), contrast)
        return least, loop_calls(loop, contrast)
    # The draft's question, one contrast answer per related culture, then the answers.
    calls = 1 + contrast + candidates(strategy, best_of_n, loop, contrast)
    return calls, calls


def dry_run(settings: Settings, embedder: Embedder | None = None,
            price_in: float | None = None, price_out: float | None = None) -> Estimate:
    """Check and plan the job; estimate its calls, tokens and (given prices) cost."""
    for flag, price in (("--price-in", price_in), ("--price-out", price_out)):
        if price is not None and price < 0:
            raise UserInputError(f"{flag}: a price per million tokens cannot be negative ({price})")
    job = prepare(settings, embedder=embedder)
    try:
        plan = _plan(job)
    finally:
        job.memory.close()
    samples: dict[str, dict[str, int]] = {}
    for culture, topic, _ in plan:
        samples.setdefault(culture, Counter())[topic] += 1
    contrast = {culture: related for culture, _, related in plan}
    least = most = 0
    for _, _, related in plan:
        low, high = sample_calls(settings.strategy, settings.best_of_n, settings.loop,
                                 settings.scoring.contrast_k if related is None else len(related))
        least, most = least + low, most + high
    elicitation = len(job.missing) * len(job.topics)  # one turn per culture and topic
    estimate = Estimate({c: dict(t) for c, t in samples.items()}, contrast, list(job.missing),
                        Span(least + elicitation, most + elicitation, most + elicitation))
    _typical_from_history(estimate, settings, most, elicitation)
    if estimate.input_tokens is not None and estimate.output_tokens is not None:
        if price_in is not None or price_out is not None:
            estimate.cost = _cost(estimate.input_tokens, price_in or 0.0, estimate.output_tokens,
                                  price_out or 0.0)
    elif price_in is not None or price_out is not None:
        estimate.notes.append("no cost: tokens are estimated from earlier runs in --out, and there "
                              "are none; a small run into the same --out gives them")
    if job.missing:
        estimate.notes.append(
            f"knowledge of {', '.join(job.missing)} is not in memory: a run first asks the culture "
            f"expert for it ({elicitation} calls, counted), which a dry run cannot do, so "
            f"{'its' if len(job.missing) == 1 else 'their'} contrast set is chosen only then "
            f"(estimated at scoring.contrast_k = {settings.scoring.contrast_k} related cultures; "
            "with auto contrast the other cultures' sets may change too)")
    return estimate


def _plan(job: Job) -> list[tuple[str, str, list[str] | None]]:
    """(culture, topic, contrast) per planned sample: the run's own planning for the cultures
    memory knows; the others' auto contrast exists only after their knowledge is elicited."""
    known = [c for c in job.cultures if c not in job.missing or job.settings.contrast != "auto"]
    entries = [(spec["culture"], spec["topic"], list(spec["contrast"]))
               for spec in dataclasses.replace(job, cultures=known).plan("dry-run")]
    later: list[tuple[str, str, list[str] | None]] = [
        (culture, topic.id, None) for culture in job.cultures if culture not in known
        for topic in job.topics for _ in range(job.settings.samples_per_topic)]
    order = {culture: index for index, culture in enumerate(job.cultures)}
    return sorted([*entries, *later], key=lambda entry: order[entry[0]])


def _typical_from_history(estimate: Estimate, settings: Settings, most: int, elicitation: int) -> None:
    """Typical calls and tokens from the latest completed runs in ``settings.out``."""
    runs = _earlier_runs(Path(settings.out))
    shares, turns, tokens_in, tokens_out = [], 0, 0, 0
    for run_dir, config, plan, trace in runs:
        sample_turns = [t for t in trace if t.get("sample_id") != ELICITED]
        try:
            loop = LoopSettings(**config.get("loop", {}))
        except ValueError:
            continue  # a config this release cannot read: not a fair reference
        strategy, best_of_n = str(config.get("strategy") or "loop"), config.get("best_of_n")
        run_most = sum(sample_calls(strategy, best_of_n, loop, len(spec.get("contrast") or []))[1]
                       for spec in plan)
        if not run_most or not sample_turns:
            continue
        shares.append(len(sample_turns) / run_most)
        estimate.history.append(str(run_dir))
        for turn in trace:  # a cached turn cost what it cost when first asked
            cached = turn.get("cache")
            turns += 1
            tokens_in += (turn.get("input_tokens") or 0) + (cached["input_tokens"] if cached else 0)
            tokens_out += (turn.get("output_tokens") or 0) + (cached["output_tokens"] if cached else 0)
    if not shares:
        estimate.notes.append(f"typical = most: no completed run in {settings.out} to learn from "
                              "(the loop stops early only when both score thresholds are met or J "
                              "plateaus); tokens are not estimated")
        return
    share = min(1.0, sum(shares) / len(shares))
    estimate.share_of_most = round(share, 3)
    calls = estimate.calls
    estimate.calls = Span(calls.least, round(most * share) + elicitation, calls.most)
    estimate.input_tokens = estimate.calls.scaled(tokens_in / turns)
    estimate.output_tokens = estimate.calls.scaled(tokens_out / turns)


def _earlier_runs(out: Path) -> list[tuple[Path, dict[str, Any], list[PlanEntry], list[TraceLine]]]:
    """(directory, config, plan, trace) of the latest completed runs in ``out``."""
    if not out.is_dir():
        return []
    found = []
    for run_dir in out.iterdir():
        if not run_dir.is_dir():
            continue
        try:
            run = open_run(run_dir)
        except UserInputError:
            continue  # not a run directory, or one whose run.json this release cannot read
        if run.status == "completed":
            found.append((float(run.run.get("finished_at") or 0.0), run))
    found.sort(key=lambda entry: entry[0], reverse=True)
    latest = []
    for _, run in found[:HISTORY_RUNS]:
        try:
            latest.append((run.dir, run.config, run.plan, run.turns))
        except UserInputError:
            continue  # a line this release cannot read: not a fair reference
    return latest


def _cost(tokens_in: Span, price_in: float, tokens_out: Span, price_out: float) -> Span:
    def money(t_in: float, t_out: float) -> float:
        return round(t_in * price_in / 1e6 + t_out * price_out / 1e6, 4)

    return Span(money(tokens_in.least, tokens_out.least), money(tokens_in.typical, tokens_out.typical),
                money(tokens_in.most, tokens_out.most))
