"""``caredio compare DIR...``: directories side by side, with paired differences and intervals.

One command for every kind of directory CAReDiO writes. A *kind* (:class:`Kind`) turns a
directory into measurements — per (group, metric), a value per unit (a question of an eval, a sample of a
run) — and everything after that is shared: means with bootstrap 95% intervals, the paired
difference of each directory against the first (over the units both measured), the verdict in
words, the table, the JSON and the plot. Another kind of directory needs only a :class:`Kind`
(the command line passes the kinds it knows: caredio/tools/compare_evals.py and
compare_runs.py).

* eval directories (``caredio eval``): metric = accuracy per task, group = country; units
  are items, paired only when both evals asked the very same prompt with the same answer key.
* run directories (``caredio run``): metric = R, D, J of the kept samples by the run's own
  scorer and by the held-out judge, LLM calls, tokens and wall time per kept sample; group =
  culture; units are sample ids, paired when runs share a plan (caredio/compare_runs.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from caredio.errors import UserInputError
from caredio.stats import Estimate, bootstrap_mean, paired_difference

ALL = "all"


class Kind(Protocol):
    """A kind of directory ``caredio compare`` reads."""

    name: str  # "eval", "run"
    ordered: bool  # keep the metrics in the order load() gives them (else sorted)
    unbounded: tuple[str, ...]  # metrics that are not shares in [0, 1] (costs): plotted from 0 up

    def accepts(self, path: Path) -> bool: ...

    def load(self, path: Path) -> Measured: ...

    def notes(self, measured: list[Measured]) -> None:
        """Add to each directory's notes what makes it unlike the first."""

    def verdicts(self, comparison: Comparison) -> list[str]: ...


@dataclass
class Measured:
    """One directory's measurements: (metric, group) -> {unit id: value}."""

    path: Path
    label: str
    kind: str
    values: dict[tuple[str, str], dict[str, float]]
    model: str = ""
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # what a kind's verdicts need


@dataclass
class Row:
    metric: str
    group: str
    estimates: list[Estimate]
    differences: list[tuple[Estimate, int, int]]  # each directory after the first, minus the first


@dataclass
class Comparison:
    kind: Kind
    measured: list[Measured]
    rows: list[Row]

    def verdicts(self) -> list[str]:
        return self.kind.verdicts(self)

    def to_dict(self) -> dict[str, Any]:
        labels = [m.label for m in self.measured]
        return {
            "kind": self.kind.name,
            "directories": [{"label": m.label, "path": str(m.path), "model": m.model,
                             "notes": m.notes} for m in self.measured],
            "rows": [{
                "metric": row.metric, "group": row.group,
                "values": {label: est.to_dict() for label, est in zip(labels, row.estimates,
                                                                      strict=True)},
                "differences": [{"directory": label, "baseline": labels[0], **diff.to_dict(),
                                 f"only_in_{labels[0]}": only_a, f"only_in_{label}": only_b}
                                for label, (diff, only_a, only_b)
                                in zip(labels[1:], row.differences, strict=True)],
            } for row in self.rows],
            "verdicts": self.verdicts(),
        }


def paired_verdicts(comparison: Comparison) -> list[str]:
    """What the overall rows say, in words: who is higher than the first directory, and whether
    it is outside the interval."""
    base = comparison.measured[0].label
    lines = []
    for row in comparison.rows:
            if row.group != ALL:
                continue
            for other, (diff, _, _) in zip(comparison.measured[1:], row.differences, strict=True):
                if diff.n == 0:
                    lines.append(f"{row.metric}: {other.label} and {base} share no units; "
                                 "no paired difference")
                    continue
                sign = "higher" if diff.mean > 0 else "lower" if diff.mean < 0 else "equal"
                where = ("outside the 95% interval: a real difference" if diff.excludes(0.0)
                         else "0 is inside the 95% interval: no difference shown")
                lines.append(f"{row.metric}: {other.label} is {sign} than {base} by "
                             f"{diff.mean:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}] over "
                             f"{diff.n} paired units; {where}")
    return lines


def kind_of(path: Path, kinds: list[Kind]) -> Kind:
    if not path.is_dir():
        raise UserInputError(f"{path}: no such directory")
    for kind in kinds:
        if kind.accepts(path):
            return kind
    raise UserInputError(f"{path}: neither an eval directory (eval.json) nor a run directory "
                         "(run.json)")


def compare(paths: list[Path], kinds: list[Kind]) -> Comparison:
    """Load every directory (all of one kind, one of ``kinds``), then estimate and pair."""
    if len(paths) < 2:
        raise UserInputError("compare: give at least two directories")
    found = {path: kind_of(path, kinds) for path in paths}
    if len({kind.name for kind in found.values()}) > 1:
        listed = ", ".join(f"{p} ({k.name})" for p, k in found.items())
        raise UserInputError(f"compare: directories of different kinds cannot be compared: {listed}")
    kind = found[paths[0]]
    measured = [kind.load(path) for path in paths]
    labels = [m.label for m in measured]
    if len(set(labels)) < len(labels):  # two folders named alike: tell them apart by path
        for m in measured:
            m.label = str(m.path)
    kind.notes(measured)
    keys: list[tuple[str, str]] = []
    for m in measured:
        keys += [key for key in m.values if key not in keys]
    metrics = list(dict.fromkeys(metric for metric, _ in keys))
    if not kind.ordered:
        metrics.sort()
    keys.sort(key=lambda key: (metrics.index(key[0]), key[1] == ALL, key[1]))
    rows = []
    for metric, group in keys:
        series = [m.values.get((metric, group), {}) for m in measured]
        rows.append(Row(metric, group, [bootstrap_mean(list(s.values())) for s in series],
                        [paired_difference(series[0], s) for s in series[1:]]))
    return Comparison(kind, measured, rows)


def row_digits(row: Row) -> int:
    """Decimals for a row: three for shares (scores, accuracies), fewer for counts and seconds."""
    values = [abs(v) for e in row.estimates if e.n for v in (e.low, e.high)]
    if not values or max(values) <= 1.0:
        return 3
    return 0 if max(values) >= 100 else 1


def interval_text(estimate: Estimate, signed: bool = False, digits: int = 3) -> str:
    """``mean [low, high]``; a dash for nothing measured."""
    if not estimate.n or math.isnan(estimate.mean):
        return "–"
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"{fmt.format(estimate.mean)} [{fmt.format(estimate.low)}, {fmt.format(estimate.high)}]"


def markdown(comparison: Comparison) -> str:
    """The comparison as a Markdown table, its notes and its verdicts (benchmarks, README)."""
    labels = [m.label for m in comparison.measured]
    head = ["metric", "group", *labels, *(f"{label} - {labels[0]}" for label in labels[1:])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in comparison.rows:
        digits = row_digits(row)
        cells = [row.metric, row.group, *(interval_text(e, digits=digits) for e in row.estimates),
                 *(f"{interval_text(d, signed=True, digits=digits)} n={d.n}" if d.n else "no pairs"
                   for d, _, _ in row.differences)]
        if row.group == ALL:
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"note: {m.label}: {note}" for m in comparison.measured for note in m.notes]
    lines += comparison.verdicts()
    return "\n".join(lines)


def write_plot(comparison: Comparison, path: Path) -> None:
    """One panel per metric (three to a row): each directory's mean and interval per group."""
    from caredio.evaluation.results import pyplot, write_png

    plt = pyplot()
    metrics = list(dict.fromkeys(row.metric for row in comparison.rows))
    groups = list(dict.fromkeys(row.group for row in comparison.rows))
    columns = min(3, len(metrics))
    lines_of_panels = math.ceil(len(metrics) / columns)
    fig, axes = plt.subplots(lines_of_panels, columns,
                             figsize=(4.2 * columns, (1.2 + 0.4 * len(groups)) * lines_of_panels),
                             squeeze=False)
    step = 0.7 / max(1, len(comparison.measured))
    for index, metric in enumerate(metrics):
        ax = axes[index // columns][index % columns]
        rows = {row.group: row for row in comparison.rows if row.metric == metric}
        for position, measured in enumerate(comparison.measured):
            points = [(g, rows[g].estimates[position]) for g in groups
                      if g in rows and rows[g].estimates[position].n]
            ys = [groups.index(g) + position * step for g, _ in points]
            xs = [est.mean for _, est in points]
            errors = [[est.mean - est.low for _, est in points], [est.high - est.mean for _, est in points]]
            ax.errorbar(xs, ys, xerr=errors, fmt="o", capsize=3, label=measured.label)
        ax.set_title(metric)
        # Scores and accuracies are shares; costs (calls, tokens, seconds) only start at 0.
        ax.set_xlim(0, None if metric in comparison.kind.unbounded else 1)
        ax.set_yticks([i + step * (len(comparison.measured) - 1) / 2 for i in range(len(groups))],
                      groups if index % columns == 0 else [""] * len(groups))
        ax.invert_yaxis()
    for index in range(len(metrics), lines_of_panels * columns):
        axes[index // columns][index % columns].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0),
               ncol=min(4, len(labels)), fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(fig, path)
