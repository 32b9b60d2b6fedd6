"""What the reviewers' decisions make of a run's samples: select and export honour them, the
report and ``caredio compare`` count them.

The rule for a sample, over every reviewer whose decision on it stands:

* **rejected** when any reviewer's standing decision is a reject: one person's veto keeps a
  sample out of the training data (a disagreement is settled by the one who rejected, or the
  sample stays out; ``caredio review merge`` lists them);
* **kept** when at least one reviewer accepted or edited it and none rejected it;
* **unreviewed** otherwise.

A kept sample's text is the latest standing decision's text that differs from the run's (an
edit, or an accept of an edited text); the original and who wrote the edit go into the line's
``metadata.review``, and the edit's re-scored R, D, J and evidence replace the run's.
"""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caredio.conversation import question_response
from caredio.errors import UserInputError
from caredio.review.store import KEEPS, ReviewLog
from caredio.rundir.formats import REVIEW, SCORES, DatasetLine, ReviewDecision


@dataclass
class Verdict:
    """One sample's standing decisions, reduced by the rule above."""

    sample_id: str
    decisions: dict[str, ReviewDecision]  # reviewer -> standing decision

    @property
    def status(self) -> str:
        kinds = {d["decision"] for d in self.decisions.values()}
        if "reject" in kinds:
            return "rejected"
        return "kept" if kinds & set(KEEPS) else "unreviewed"

    def edit_for(self, question: str, response: str) -> ReviewDecision | None:
        """The latest standing decision whose text differs from (question, response)."""
        changed = [d for d in self.decisions.values() if "after" in d
                   and (d["after"]["question"], d["after"]["response"]) != (question, response)]
        return max(changed, key=lambda d: d["time"]) if changed else None

    def reasons(self) -> list[str]:
        return [str(d.get("reason")) for d in self.decisions.values()
                if d["decision"] == "reject" and d.get("reason")]


@dataclass
class Binding:
    """Every sample's verdict, and what applying them to a list of lines did."""

    verdicts: dict[str, Verdict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def reviewed(self) -> bool:
        return any(v.status != "unreviewed" for v in self.verdicts.values())

    def status(self, sample_id: str) -> str:
        verdict = self.verdicts.get(sample_id)
        return verdict.status if verdict else "unreviewed"

    def apply(self, lines: Sequence[DatasetLine], reviewed_only: bool = False,
              ) -> tuple[list[DatasetLine], Counter[str]]:
        """The lines that survive review, edited text in place; counts of what happened."""
        counts: Counter[str] = Counter()
        kept: list[DatasetLine] = []
        for line in lines:
            sample_id = str(line["metadata"]["sample_id"])
            status = self.status(sample_id)
            if status == "rejected":
                counts["rejected"] += 1
                continue
            if status == "unreviewed":
                if reviewed_only:
                    counts["unreviewed"] += 1
                    continue
                kept.append(line)
                continue
            reviewed = reviewed_line(line, self.verdicts[sample_id])
            meta: dict[str, Any] = dict(reviewed["metadata"])
            review = meta.get("review") or {}
            counts["edited" if "original" in review else "accepted"] += 1
            kept.append(reviewed)
        return kept, counts


def load_binding(run_dir: Path) -> Binding:
    log = ReviewLog.open(run_dir)
    by_sample: dict[str, dict[str, ReviewDecision]] = defaultdict(dict)
    for (reviewer, sample_id), decision in log.standing().items():
        by_sample[sample_id][reviewer] = decision
    return Binding({s: Verdict(s, d) for s, d in by_sample.items()}, log.warnings)


def reviewed_line(line: DatasetLine, verdict: Verdict) -> DatasetLine:
    """A kept sample's line as reviewed: the edited text (if any) in its messages, the run's
    text and who changed it in ``metadata.review``. Idempotent: a line already reviewed (in
    ``selected.jsonl``) is reviewed from its original text again."""
    out: Any = copy.deepcopy(line)  # a DatasetLine, changed in place below
    meta = out["metadata"]
    previous = meta.get("review") or {}
    original = previous.get("original")
    if original:  # restore the run's text and scores first
        _set_text(out, original["question"], original["response"])
        for key in SCORES:
            if key in original:
                meta[key] = original[key]
        if "evidence" in original:
            meta["evidence"] = original["evidence"]
        elif "evidence" in meta:
            del meta["evidence"]
    question, response = question_response(out["messages"])
    review: dict[str, Any] = {
        "status": verdict.status,
        "reviewers": sorted(who for who, d in verdict.decisions.items() if d["decision"] in KEEPS),
        "time": max(d["time"] for d in verdict.decisions.values()),
    }
    edit = verdict.edit_for(question, response)
    if edit is not None:
        review["original"] = {"question": question, "response": response,
                              **{k: meta[k] for k in SCORES if k in meta}}
        if "evidence" in meta:
            review["original"]["evidence"] = meta["evidence"]
        review["edited_by"] = edit["reviewer"]
        _set_text(out, edit["after"]["question"], edit["after"]["response"])
        scores = edit.get("scores_after") or {}
        for key in SCORES:
            if key in scores:
                meta[key] = scores[key]
        evidence = edit.get("evidence_after")
        if evidence is None:
            meta.pop("evidence", None)  # the run's evidence is about the text it replaced
        else:
            meta["evidence"] = evidence
        if not scores:
            review["rescore_note"] = str(edit.get("rescore_note") or "not re-scored")
    meta["review"] = review
    return out


def _set_text(line: Any, question: str, response: str) -> None:
    """The last exchange's user and assistant messages (the sample, caredio/conversation.py)."""
    messages = line["messages"]
    answer_at = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    if answer_at is not None:
        messages[answer_at]["content"] = response
        asked = max((i for i, m in enumerate(messages[:answer_at]) if m.get("role") == "user"), default=None)
        if asked is not None:
            messages[asked]["content"] = question


def honour_reviews(run_dir: Path, lines: Sequence[DatasetLine], reviewed_only: bool,
                   ) -> tuple[list[DatasetLine], Counter[str]]:
    """``lines`` as the reviewers left them; with ``reviewed_only`` only the ones reviewed and
    kept. A run without decisions is refused ``reviewed_only`` (it would export nothing)."""
    binding = load_binding(run_dir)
    if reviewed_only and not binding.reviewed:
        raise UserInputError(f"--reviewed-only: {run_dir / REVIEW} holds no decision yet; "
                             f"review first (`caredio review {run_dir}`)")
    return binding.apply(lines, reviewed_only)


def describe(counts: Counter[str]) -> str:
    """What review did to an export or selection, in words ('' when nothing)."""
    parts = [f"{counts[k]} {label}" for k, label in (
        ("rejected", "left out as rejected by a reviewer"),
        ("unreviewed", "left out as not reviewed (--reviewed-only)"),
        ("edited", "with the reviewer's edited text"), ("accepted", "accepted by a reviewer"))
        if counts.get(k)]
    return "; ".join(parts)


# -- acceptance: the report and compare --------------------------------------------------------


def acceptance_units(run_dir: Path, lines: Sequence[DatasetLine]) -> dict[str, float]:
    """Sample id -> 1.0 kept (accepted or edited), 0.0 rejected, for reviewed samples only."""
    binding = load_binding(run_dir)
    units = {}
    for line in lines:
        sample_id = str(line["metadata"]["sample_id"])
        status = binding.status(sample_id)
        if status != "unreviewed":
            units[sample_id] = 1.0 if status == "kept" else 0.0
    return units
