"""Run directories in ``caredio compare``: scores by the loop's scorer and by the judge, and cost.

Per kept sample (a line of ``dataset.jsonl``), grouped by culture and overall:

* ``objective``, ``representativeness``, ``distinctiveness`` — the loop's own scorer, as the run
  recorded them (the loop optimized these: not evidence by themselves);
* ``judge objective``, ``judge representativeness``, ``judge distinctiveness`` — the held-out
  judge (``--judge-split``), on knowledge no agent of the run was shown;
* ``LLM calls`` and ``tokens`` (input + output) — the sample's own agent turns in
  ``trace.jsonl`` (a turn's internal retries included in its tokens);
* ``wall s`` — the run's wall time shared among its kept samples in proportion to their LLM
  time, so the mean is exactly wall time / kept samples and the interval shows how unevenly
  it was spent.
* ``human acceptance`` — where the run has reviews (``caredio review``): 1 for a reviewed sample
  a person kept (accepted or edited), 0 for one rejected; unreviewed samples are not units. The
  judge a team with reviewers can trust between strategies or template versions.

Samples are paired across runs by sample id *and* their plan entry (culture, topic, contrast,
index): two runs share a plan when they planned the same samples, and only those pair.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from caredio.review.binding import acceptance_units
from caredio.rundir.formats import CONFIG, RUN_JSON, TraceLine
from caredio.rundir.formats import SCORES as RUN_SCORES
from caredio.rundir.reader import open_run
from caredio.stats import paired_difference
from caredio.tools.compare import ALL, Comparison, Measured
from caredio.tools.template_changes import template_notes, template_verdicts

# J first: it is what the strategies are compared on; then its two parts.
SCORES = ("objective", *(name for name in RUN_SCORES if name != "objective"))
JUDGE = tuple(f"judge {name}" for name in SCORES)
COSTS = ("LLM calls", "tokens", "wall s")
HUMAN = "human acceptance"
METRICS = (*SCORES, *JUDGE, HUMAN, *COSTS)
# Settings two runs must share for a fair comparison; a difference is noted.
SHARED = (("model", ("model",)), ("temperature", ("config", "llm", "temperature")),
          ("llm seed", ("config", "llm", "seed")), ("judge split", ("config", "judge", "split")),
          ("judge embedding", ("config", "judge", "embedding")),
          ("embedding", ("config", "memory", "embedding")),
          ("memory", ("config", "memory", "path")), ("max_rounds", ("config", "loop", "max_rounds")),
          ("scoring", ("config", "scoring")))


def _plan_keys(run_dir: Path) -> dict[str, str]:
    """sample id -> pairing key: the id plus a hash of its plan entry (run id left out)."""
    keys = {}
    for spec in open_run(run_dir).plan:
        entry = {k: v for k, v in spec.items() if k != "run_id"}
        digest = hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()[:10]
        keys[str(spec["sample_id"])] = f"{spec['sample_id']}#{digest}"
    return keys


def load_run_dir(path: Path) -> Measured:
    from caredio.tools.compare import Measured

    run = open_run(path)
    lines = run.samples()
    keys = _plan_keys(run.dir)
    turns: dict[str, list[TraceLine]] = defaultdict(list)
    for turn in run.turns:
        turns[str(turn.get("sample_id"))].append(turn)
    kept = [str(line["metadata"]["sample_id"]) for line in lines]
    llm_seconds = {s: sum(int(t.get("latency_ms") or 0) for t in turns[s]) / 1000 for s in kept}
    wall = float(run.run.get("wall_seconds") or 0.0)
    spent = sum(llm_seconds.values())
    values: dict[tuple[str, str], dict[str, float]] = {}

    def put(metric: str, culture: str, unit: str, value: float) -> None:
        values.setdefault((metric, culture), {})[unit] = value
        values.setdefault((metric, ALL), {})[unit] = value

    judged = 0
    accepted = acceptance_units(run.dir, lines)
    for line in lines:
        meta: dict[str, Any] = dict(line["metadata"])
        sample, culture = str(meta["sample_id"]), str(meta["culture"])
        unit = keys.get(sample, sample)
        for metric in SCORES:
            put(metric, culture, unit, float(meta.get(metric) or 0.0))
        if "judge_objective" in meta:
            judged += 1
            for metric in SCORES:
                put(f"judge {metric}", culture, unit, float(meta[f"judge_{metric}"]))
        if sample in accepted:
            put(HUMAN, culture, unit, accepted[sample])
        put("LLM calls", culture, unit, float(len(turns[sample])))
        put("tokens", culture, unit, float(sum(int(t.get("input_tokens") or 0)
                                               + int(t.get("output_tokens") or 0)
                                               for t in turns[sample])))
        if wall and spent:
            put("wall s", culture, unit, wall * llm_seconds[sample] / spent)
    notes = [] if run.status == "completed" else [f"status {run.status}"]
    if judged < len(lines):
        notes.append(f"{len(lines) - judged} of {len(lines)} kept samples have no judge scores "
                     "(run without --judge-split)")
    other = [s for s in turns if s not in set(kept)]
    if other:
        other_calls = sum(len(turns[s]) for s in other)
        notes.append(f"{other_calls} LLM calls outside kept samples (knowledge elicitation, "
                     "failed samples) are not in the per-sample cost")
    strategy = str(run.run.get("strategy") or run.config.get("strategy") or "loop")
    measured = Measured(run.dir, run.dir.name, "run", values, str(run.run.get("model", "")), notes)
    measured.details = {"strategy": strategy, "model": str(run.run.get("model", "")),
                        "config": run.config, "keys": set(keys.values()) or set(kept)}
    return measured


def _get(details: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = details
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def fairness_notes(measured: list[Measured]) -> None:
    """Note on every run what makes it unlike the first: another plan, model, seed, judge."""
    first = measured[0]
    for other in measured[1:]:
        shared = first.details["keys"] & other.details["keys"]
        if shared != first.details["keys"] or shared != other.details["keys"]:
            other.notes.append(f"plan differs from {first.label}: {len(shared)} samples in common "
                               "(only those are paired)")
        for name, path in SHARED:
            a, b = _get(first.details, path), _get(other.details, path)
            if a != b:
                shown = ("differ" if isinstance(a, dict) or isinstance(b, dict)
                         else f"{b!r} vs {a!r}")
                other.notes.append(f"{name} differs from {first.label}: {shown}")


def _name(measured: Measured) -> str:
    strategy = measured.details.get("strategy", "")
    return measured.label if strategy in measured.label else f"{measured.label} ({strategy})"


# Fewer paired samples than this get no verdict: a bootstrap interval over a handful of
# differences is far too narrow (over 3, its bound is simply the smallest of them).
MIN_PAIRS = 8


def run_verdicts(comparison: Comparison) -> list[str]:
    """In words: who wins on the judge and whether it is outside the interval, the same on the
    loop's own scorer, what a gain seen only by the loop's scorer means, and the cost."""
    rows = {row.metric: row for row in comparison.rows if row.group == ALL}
    runs = comparison.measured
    lines = []
    for metric, who in (("judge objective", "On the held-out judge"),
                        ("objective", "On the loop's own scorer")):
        row = rows.get(metric)
        if row is None or not any(est.n for est in row.estimates):
            lines.append(f"{who}: no scores (run with --judge-split to get a judge)"
                         if metric.startswith("judge") else f"{who}: no scores")
            continue
        scored = [(est.mean, i) for i, est in enumerate(row.estimates) if est.n]
        best = max(scored)[1]
        est = row.estimates[best]
        uneven = len({e.n for e in row.estimates if e.n}) > 1
        lines.append(f"{who}, the highest mean J is {_name(runs[best])}: {est.mean:.3f} "
                     f"[{est.low:.3f}, {est.high:.3f}]"
                     + (" (the runs kept different samples: the paired differences below compare "
                        "like with like)" if uneven else ""))
        for index, other in enumerate(runs):
            if index == best or not row.estimates[index].n:
                continue
            diff, _, _ = paired_difference(other.values.get((metric, ALL), {}),
                                           runs[best].values.get((metric, ALL), {}))
            if diff.n == 0:
                lines.append(f"  {_name(runs[best])} vs {_name(other)}: no samples in common")
                continue
            if diff.n < MIN_PAIRS:
                where = f"too few paired samples for a verdict (fewer than {MIN_PAIRS})"
            elif diff.excludes(0.0):
                where = "outside the 95% interval: a real difference"
            else:
                where = "0 is inside the 95% interval: no difference shown"
            lines.append(f"  {_name(runs[best])} - {_name(other)}: {diff.mean:+.3f} "
                         f"[{diff.low:+.3f}, {diff.high:+.3f}] over {diff.n} paired samples; {where}")
    lines += _acceptance(comparison)
    lines += _overfitting(comparison)
    lines += template_verdicts(comparison)
    lines += _costs(comparison)
    return lines


def _acceptance(comparison: Comparison) -> list[str]:
    """Who the reviewers kept most of, with the interval; nothing when no run has reviews."""
    row = next((r for r in comparison.rows if r.metric == HUMAN and r.group == ALL), None)
    if row is None or not any(est.n for est in row.estimates):
        return []
    runs = comparison.measured
    shown = "; ".join(f"{_name(runs[i])} {est.mean:.3f} [{est.low:.3f}, {est.high:.3f}] over {est.n}"
                      if est.n else f"{_name(runs[i])} not reviewed" for i, est in enumerate(row.estimates))
    lines = [f"By the reviewers (share of reviewed samples kept): {shown}"]
    for other, (diff, _, _) in zip(runs[1:], row.differences, strict=True):
        if diff.n >= MIN_PAIRS:
            where = ("outside the 95% interval: a real difference" if diff.excludes(0.0)
                     else "0 is inside the 95% interval: no difference shown")
            lines.append(f"  {_name(other)} - {_name(runs[0])}: {diff.mean:+.3f} "
                         f"[{diff.low:+.3f}, {diff.high:+.3f}] over {diff.n} samples both reviewed; {where}")
    return lines


def _overfitting(comparison: Comparison) -> list[str]:
    """A difference from the first run that the loop's scorer shows and the judge does not."""
    base = comparison.measured[0]
    lines = []
    for other in comparison.measured[1:]:
        own, _, _ = paired_difference(base.values.get(("objective", ALL), {}),
                                      other.values.get(("objective", ALL), {}))
        judged, _, _ = paired_difference(base.values.get(("judge objective", ALL), {}),
                                         other.values.get(("judge objective", ALL), {}))
        if min(own.n, judged.n) < MIN_PAIRS:
            continue
        if own.low > 0 and not judged.low > 0:
            winner, loser = other, base
        elif own.high < 0 and not judged.high < 0:
            winner, loser = base, other
        else:
            continue
        lines.append(f"{_name(winner)} beats {_name(loser)} on the loop's scorer but not on the "
                     "judge: a gain of the scorer (overfitting to it), not shown to be better data")
    return lines


def _costs(comparison: Comparison) -> list[str]:
    rows = {row.metric: row for row in comparison.rows if row.group == ALL}
    calls, tokens, wall = (rows.get(name) for name in COSTS)
    if calls is None:
        return []
    parts = []
    for index, run in enumerate(comparison.measured):
        if not calls.estimates[index].n:
            continue
        text = f"{_name(run)} {calls.estimates[index].mean:.1f} calls"
        if tokens is not None and tokens.estimates[index].n:
            text += f", {tokens.estimates[index].mean:.0f} tokens"
        if wall is not None and wall.estimates[index].n:
            text += f", {wall.estimates[index].mean:.1f} s"
        parts.append(text)
    return ["Cost per kept sample: " + "; ".join(parts)] if parts else []


class RunKind:
    name = "run"
    ordered = True  # scores, then the judge's, then costs: the order of METRICS
    unbounded: tuple[str, ...] = COSTS

    def accepts(self, path: Path) -> bool:
        return (path / RUN_JSON).exists() or (path / CONFIG).exists()

    def load(self, path: Path) -> Measured:
        return load_run_dir(path)

    def notes(self, measured: list[Measured]) -> None:
        fairness_notes(measured)
        template_notes(measured)  # which templates differ; the edited steps' rows

    def verdicts(self, comparison: Comparison) -> list[str]:
        return run_verdicts(comparison)


RUNS = RunKind()
