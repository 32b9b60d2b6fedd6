"""``caredio report``: PNG figures and one self-contained HTML page for a run.

The report answers the questions a user has after a run: did the loop improve the samples
(scores per round, first version vs best), where is the dataset thin (topic × culture
coverage), and what did it cost (tokens and model time per agent role). The HTML embeds the
PNGs as base64 so it can be mailed or attached to a ticket as one file. matplotlib runs on
the Agg backend: no display is needed.
"""

from __future__ import annotations

import base64
import html
import io
import statistics
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from caredio.errors import UserInputError
from caredio.rundir.files import atomic_write
from caredio.rundir.reader import AGENTS, RunData, open_run
from caredio.tools.evidence_html import evidence_section

SCORE_NAMES = {"representativeness": "R", "distinctiveness": "D", "objective": "J"}
COLORS = {"representativeness": "#1f77b4", "distinctiveness": "#ff7f0e", "objective": "#2ca02c"}
FIGURES = ("scores_by_round", "first_vs_best", "coverage", "cost_by_agent")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UserInputError("report: needs matplotlib: pip install 'caredio[report]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def first_and_best(
    trajectories: Sequence[Mapping[str, Any]],
) -> dict[str, tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """Per sample: its first version and its best one (highest J, earliest on ties)."""
    by_sample: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for version in trajectories:
        by_sample[str(version["sample_id"])].append(version)
    result = {}
    for sample, versions in by_sample.items():
        versions.sort(key=lambda v: v["round"])
        best = max(versions, key=lambda v: (v["objective"], -v["round"]))
        result[sample] = (versions[0], best)
    return result


def fig_scores_by_round(trajectories: Sequence[Mapping[str, Any]]) -> bytes:
    plt = _pyplot()
    rounds = sorted({int(v["round"]) for v in trajectories})
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for key, short in SCORE_NAMES.items():
        values = [[float(v[key]) for v in trajectories if v["round"] == r] for r in rounds]
        means = [statistics.fmean(vs) for vs in values]
        spread = [statistics.pstdev(vs) if len(vs) > 1 else 0.0 for vs in values]
        ax.plot(rounds, means, marker="o", color=COLORS[key], label=f"{short} ({key})")
        ax.fill_between(
            rounds,
            [m - s for m, s in zip(means, spread, strict=True)],
            [m + s for m, s in zip(means, spread, strict=True)],
            color=COLORS[key],
            alpha=0.15,
        )
    counts = [sum(1 for v in trajectories if v["round"] == r) for r in rounds]
    ax.set_xticks(rounds, [f"{r}\n(n={n})" for r, n in zip(rounds, counts, strict=True)])
    ax.set_xlabel("round (n = versions scored)")
    ax.set_ylabel("score (mean ± std)")
    ax.set_ylim(0, 1)
    ax.set_title("Scores per optimization round")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def fig_first_vs_best(trajectories: Sequence[Mapping[str, Any]]) -> bytes:
    plt = _pyplot()
    pairs = first_and_best(trajectories)
    cultures = sorted({str(first.get("culture", "?")) for first, _ in pairs.values()})
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), sharey=True)
    width = 0.38
    for ax, (key, short) in zip(axes, SCORE_NAMES.items(), strict=True):
        for offset, (label, which, alpha) in enumerate((("first", 0, 0.45), ("best", 1, 1.0))):
            means = [
                statistics.fmean(
                    [float(p[which][key]) for p in pairs.values() if p[0].get("culture") == c]
                )
                for c in cultures
            ]
            xs = [i + (offset - 0.5) * width for i in range(len(cultures))]
            ax.bar(xs, means, width, label=label, color=COLORS[key], alpha=alpha)
        ax.set_xticks(range(len(cultures)), cultures, rotation=20, fontsize=8)
        ax.set_title(f"{short}: first version vs best")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("mean score per culture")
    axes[0].legend(fontsize=8)
    return _png(fig)


def coverage_cells(run: RunData, trajectories: Sequence[Mapping[str, Any]],
                   ) -> tuple[list[str], list[str], dict[tuple[str, str], list[float]]]:
    """Topics, cultures and the best J of each sample per (topic, culture): dataset lines, and
    the best version so far of samples still optimizing."""
    best = {s: b for s, (_, b) in first_and_best(trajectories).items()}
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    done = set()
    for line in run.dataset:
        meta = line["metadata"]
        cells[(str(meta.get("topic")), str(meta["culture"]))].append(float(meta["objective"]))
        done.add(meta["sample_id"])
    for sample, version in best.items():
        if sample not in done:
            cells[(str(version.get("topic")), str(version.get("culture")))].append(
                float(version["objective"])
            )
    topics = sorted({t for t, _ in cells} | set(run.config.get("topics") or []))
    cultures = sorted({c for _, c in cells} | set(run.config.get("cultures") or []))
    return topics, cultures, cells


def coverage_figure(run: RunData, trajectories: Sequence[Mapping[str, Any]]) -> Any:
    """Colour = mean best J on its true scale [0, 1]; a cell without samples is grey."""
    plt = _pyplot()
    import numpy as np

    topics, cultures, cells = coverage_cells(run, trajectories)
    grid = np.ma.masked_invalid([
        [statistics.fmean(cells[(t, c)]) if cells.get((t, c)) else np.nan for c in cultures]
        for t in topics
    ])
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(cultures), 1.2 + 0.45 * len(topics)))
    cmap = plt.get_cmap("YlGn").with_extremes(bad="#dddddd")
    image = ax.imshow(grid, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for i, topic in enumerate(topics):
        for j, culture in enumerate(cultures):
            values = cells.get((topic, culture), [])
            label = f"{len(values)}\nJ {statistics.fmean(values):.2f}" if values else "none"
            ax.text(j, i, label, ha="center", va="center", fontsize=8, color="black")
    ax.set_xticks(range(len(cultures)), cultures, rotation=20, fontsize=8)
    ax.set_yticks(range(len(topics)), topics, fontsize=8)
    ax.set_title("Coverage: samples and mean best J per topic × culture")
    fig.colorbar(image, ax=ax, label="mean best J (grey: no sample)")
    return fig


def fig_coverage(run: RunData, trajectories: Sequence[Mapping[str, Any]]) -> bytes:
    return _png(coverage_figure(run, trajectories))


def cost_by_agent(run: RunData) -> dict[str, dict[str, float]]:
    """Tokens, calls and time per agent role, summed over the trace.

    ``request_seconds`` is time the endpoint took to answer, ``queue_seconds`` time a call
    waited for a request slot (``--concurrency``; one at a time on the embedded server).
    A turn's latency holds both, so summing latency counts the queue as model time. Traces
    written before the two were recorded have latency only: it counts as request time.
    """
    empty = {"input": 0.0, "output": 0.0, "calls": 0.0, "request_seconds": 0.0, "queue_seconds": 0.0}
    cost = {agent: dict(empty) for agent in AGENTS}
    for turn in run.turns:
        row = cost.setdefault(str(turn.get("agent")), dict(empty))
        row["input"] += float(turn.get("input_tokens") or 0)
        row["output"] += float(turn.get("output_tokens") or 0)
        row["calls"] += 1
        if "request_ms" in turn:
            row["request_seconds"] += float(turn.get("request_ms") or 0) / 1000
            row["queue_seconds"] += float(turn.get("queue_ms") or 0) / 1000
        else:
            row["request_seconds"] += float(turn.get("latency_ms") or 0) / 1000
    return cost


def cost_figure(run: RunData) -> Any:
    plt = _pyplot()
    cost = cost_by_agent(run)
    agents = list(cost)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.4))
    inputs = [cost[a]["input"] for a in agents]
    left.bar(agents, inputs, label="input", color="#9ecae1")
    left.bar(
        agents, [cost[a]["output"] for a in agents], bottom=inputs, label="output", color="#3182bd"
    )
    left.set_title("Tokens per agent role")
    left.legend(fontsize=8)
    width = 0.38
    xs = list(range(len(agents)))
    right.bar([x - width / 2 for x in xs], [cost[a]["request_seconds"] for a in agents], width,
              label="waiting for the endpoint", color="#756bb1")
    right.bar([x + width / 2 for x in xs], [cost[a]["queue_seconds"] for a in agents], width,
              label="queued for a request slot", color="#bcbddc")
    right.set_xticks(xs, agents)
    right.set_title("Time per agent role (s, summed over calls)")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    return fig


def fig_cost(run: RunData) -> bytes:
    return _png(cost_figure(run))


def write_report(run_dir: str | Path) -> tuple[Path, list[Path]]:
    """Figures as PNG files and report.html (with the same PNGs inline) in the run directory."""
    run = open_run(run_dir)
    trajectories = run.trajectories
    if not trajectories:
        raise UserInputError(
            f"{run.dir / 'trajectories.jsonl'}: no scored versions yet (run status: {run.status})"
        )
    pngs = {
        "scores_by_round": fig_scores_by_round(trajectories),
        "first_vs_best": fig_first_vs_best(trajectories),
        "coverage": fig_coverage(run, trajectories),
        "cost_by_agent": fig_cost(run),
    }
    paths = []
    for name, data in pngs.items():
        path = run.dir / f"report_{name}.png"
        atomic_write(path, data)
        paths.append(path)
    page = run.dir / "report.html"
    atomic_write(page, render_html(run, pngs))
    return page, paths


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:.85rem}
td,th{border:1px solid #ddd;padding:.25rem .5rem} th{background:#f3f3f3} td.q{max-width:420px}
figure{margin:1.5rem 0} img{max-width:100%} figcaption{color:#555;font-size:.85rem}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem} dt{font-weight:600}
"""
HEADER = "".join(
    f"<th>{name}</th>"
    for name in (
        "sample",
        "culture",
        "topic",
        "first J",
        "best J",
        "best round",
        "R",
        "D",
        "best question",
    )
)
CAPTIONS = {
    "scores_by_round": "Mean R, D and J of the versions scored in each round; the band is ±1 std.",
    "first_vs_best": "Per culture: the first version of each sample against the best one kept.",
    "coverage": "Samples per topic and culture; the colour is their mean best J on a 0 to 1 scale, "
    "grey cells are gaps.",
    "cost_by_agent": "Tokens (input + output) per agent role; time spent waiting for the "
    "endpoint's answers and time queued for a request slot, apart, summed over calls (calls "
    "overlap, so sums can exceed the run's wall time).",
}


def review_section(run: RunData) -> str:
    """Human review: progress and acceptance by culture and topic (caredio/review/summary.py)."""
    from caredio.review.summary import review_html

    return review_html(run.dir, run.dataset)


def render_html(run: RunData, pngs: dict[str, bytes]) -> str:
    esc = html.escape
    info = run.run
    cost = cost_by_agent(run)  # from the trace: also right for a run still going
    tokens = int(sum(row["input"] + row["output"] for row in cost.values()))
    wall = f"{info['wall_seconds']} s" if info.get("wall_seconds") is not None else None
    if wall is None and info.get("started_at"):
        wall = f"{time.time() - float(info['started_at']):.0f} s so far"
    planned = info.get("planned")
    facts = [
        ("run", run.run_id),
        ("status", run.status),
        ("model", info.get("model", "?")),
        ("endpoint", info.get("endpoint", "?")),
        (
            "samples",
            f"{info.get('completed', len(run.dataset))} completed"
            f" / {'?' if planned is None else planned} planned / {info.get('failed', 0)} failed",
        ),
        ("wall time", wall or "?"),
        ("tokens", f"{tokens} in {sum(int(r['calls']) for r in cost.values())} agent turns"),
        ("call time (summed)",
         f"{sum(r['request_seconds'] for r in cost.values()):.0f} s waiting for the endpoint, "
         f"{sum(r['queue_seconds'] for r in cost.values()):.0f} s queued for a request slot"),
        ("config hash", info.get("config_hash", "?")),
        ("templates hash", info.get("templates_hash", "?")),
    ]
    rows = []
    for sample, (first, best) in sorted(first_and_best(run.trajectories).items()):
        rows.append(
            f"<tr><td>{esc(sample)}</td><td>{esc(str(first.get('culture')))}</td>"
            f"<td>{esc(str(first.get('topic')))}</td><td>{first['objective']:.3f}</td>"
            f"<td>{best['objective']:.3f}</td><td>{best['round']}</td>"
            f"<td>{best['representativeness']:.3f}</td><td>{best['distinctiveness']:.3f}</td>"
            f"<td class=q>{esc(str(best['question']))}</td></tr>"
        )
    figures = "".join(
        f"<figure><img alt='{name}' src='data:image/png;base64,{base64.b64encode(data).decode()}'>"
        f"<figcaption>{esc(CAPTIONS[name])}</figcaption></figure>"
        for name, data in pngs.items()
    )
    templates = "".join(
        f"<li><code>{esc(n)}</code> #{esc(str(v.get('hash')))} ({esc(str(v.get('source')))})</li>"
        for n, v in sorted(run.template_index.items())
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CAReDiO run {esc(run.run_id)}</title>
<style>{STYLE}</style></head><body>
<h1>CAReDiO run <code>{esc(run.run_id)}</code></h1>
<dl>{"".join(f"<dt>{esc(k)}</dt><dd>{esc(str(v))}</dd>" for k, v in facts)}</dl>
{figures}
<h2>Samples: first J → best J</h2>
<table><tr>{HEADER}</tr>{"".join(rows)}</table>
{review_section(run)}
{evidence_section(run)}
<h2>Templates</h2><ul>{templates}</ul>
<p style="color:#777;font-size:.8rem">Generated by <code>caredio report</code> at
{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}.</p>
</body></html>
"""
