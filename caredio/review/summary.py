"""Review progress and acceptance by culture and topic: the report's review section.

Acceptance is the share of reviewed samples a person kept (accepted or edited), with its 95%
bootstrap interval over the reviewed samples (caredio/stats.py): the judge no embedding can be
(DESIGN.md 3.6).
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caredio.review.binding import load_binding
from caredio.rundir.formats import DatasetLine
from caredio.stats import Estimate, bootstrap_mean


@dataclass
class Group:
    total: int = 0
    kept: int = 0
    edited: int = 0
    rejected: int = 0
    units: list[float] = field(default_factory=list)

    @property
    def reviewed(self) -> int:
        return self.kept + self.rejected

    def acceptance(self) -> Estimate:
        return bootstrap_mean(self.units)


@dataclass
class ReviewSummary:
    overall: Group
    by_culture: dict[str, Group]
    by_topic: dict[str, Group]
    reasons: Counter[str]
    reviewers: Counter[str]


def summarize(run_dir: Path, lines: Sequence[DatasetLine]) -> ReviewSummary:
    binding = load_binding(run_dir)
    overall = Group()
    cultures: defaultdict[str, Group] = defaultdict(Group)
    topics: defaultdict[str, Group] = defaultdict(Group)
    reasons: Counter[str] = Counter()
    reviewers: Counter[str] = Counter()
    for line in lines:
        meta: dict[str, Any] = dict(line["metadata"])
        sample_id = str(meta["sample_id"])
        groups = (overall, cultures[str(meta.get("culture", "?"))], topics[str(meta.get("topic", "?"))])
        verdict = binding.verdicts.get(sample_id)
        status = verdict.status if verdict else "unreviewed"
        edited = bool(verdict and status == "kept" and verdict.edit_for(*_text(line)))
        for group in groups:
            group.total += 1
            if status == "kept":
                group.kept += 1
                group.edited += edited
                group.units.append(1.0)
            elif status == "rejected":
                group.rejected += 1
                group.units.append(0.0)
        if verdict:
            reasons.update(verdict.reasons())
            reviewers.update(verdict.decisions.keys())
    return ReviewSummary(overall, dict(cultures), dict(topics), reasons, reviewers)


def _text(line: DatasetLine) -> tuple[str, str]:
    from caredio.conversation import question_response

    return question_response(line["messages"])


def _acceptance(group: Group) -> str:
    est = group.acceptance()
    return "–" if not est.n else f"{est.mean:.2f} [{est.low:.2f}, {est.high:.2f}]"


def _table(title: str, groups: dict[str, Group]) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{g.reviewed}/{g.total}</td><td>{g.kept}</td><td>{g.edited}</td>"
        f"<td>{g.rejected}</td><td>{_acceptance(g)}</td></tr>" for name, g in sorted(groups.items()))
    return (f"<table><tr><th>{esc(title)}</th><th>reviewed</th><th>kept</th><th>of them edited</th>"
            f"<th>rejected</th><th>acceptance [95% interval]</th></tr>{rows}</table>")


def review_html(run_dir: Path, lines: Sequence[DatasetLine]) -> str:
    """The report's section: progress, acceptance by culture and by topic, reject reasons."""
    esc = html.escape
    summary = summarize(run_dir, lines)
    if not summary.overall.reviewed:
        return ("<h2>Human review</h2><p>No sample reviewed yet: <code>caredio review "
                f"{esc(str(run_dir))}</code> opens the review app.</p>")
    overall = summary.overall
    people = ", ".join(f"{esc(who)} ({n})" for who, n in summary.reviewers.most_common())
    reasons = "".join(f"<li>{esc(reason)}: {n}</li>" for reason, n in summary.reasons.most_common())
    return (
        "<h2>Human review</h2>"
        f"<p>{overall.reviewed} of {overall.total} samples reviewed ({overall.kept} kept, "
        f"{overall.edited} of them edited; {overall.rejected} rejected); acceptance "
        f"{_acceptance(overall)}. Reviewers (samples decided): {people}. Rejected samples are "
        "left out of <code>caredio select</code> and <code>caredio export</code>.</p>"
        + _table("culture", summary.by_culture) + "<p></p>" + _table("topic", summary.by_topic)
        + (f"<p>Reasons for rejecting:</p><ul>{reasons}</ul>" if reasons else ""))
