"""``caredio review merge A B``: two reviewers' files as one, with where they disagree.

Agreement is measured where both reviewed the same sample, on what binds: keep (accept or edit)
or reject. Cohen's kappa corrects the share of agreement for the agreement two reviewers with
their own base rates would reach by chance:

    kappa = (p_o - p_e) / (1 - p_e),  p_e = sum over categories of p_A(category) * p_B(category)

It is undefined when both gave one and the same category to every shared sample (p_e = 1).
Two reviewers who both kept a sample but wrote different edits are not a disagreement on the
category; they are listed apart ("edited differently").
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from caredio.errors import UserInputError
from caredio.review.store import KEEPS, read_decisions, standing
from caredio.rundir.files import atomic_write
from caredio.rundir.formats import ReviewDecision


def category(decision: ReviewDecision) -> str:
    return "keep" if decision["decision"] in KEEPS else "reject"


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Kappa of (rater A's category, rater B's category) pairs; None when undefined."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(1 for a, b in pairs if a == b) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[c] / n * second[c] / n for c in first.keys() | second.keys())
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


@dataclass
class Disagreement:
    sample_id: str
    a: ReviewDecision
    b: ReviewDecision


@dataclass
class Merged:
    decisions: list[ReviewDecision]
    reviewers_a: list[str]
    reviewers_b: list[str]
    shared: int = 0
    agreement: float | None = None
    kappa: float | None = None
    disagreements: list[Disagreement] = field(default_factory=list)
    edited_differently: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _one_reviewer(path: Path, decisions: list[ReviewDecision]) -> dict[str, ReviewDecision]:
    """Sample id -> the standing decision of the file's reviewer (one reviewer per file)."""
    held = standing(decisions)
    reviewers = sorted({who for who, _ in held})
    if len(reviewers) > 1:
        raise UserInputError(f"{path}: holds decisions of {len(reviewers)} reviewers "
                             f"({', '.join(reviewers)}); merge compares two files of one reviewer each")
    return {sample: d for (_, sample), d in held.items()}


def merge(path_a: Path, path_b: Path) -> Merged:
    for path in (path_a, path_b):
        if not path.is_file():
            raise UserInputError(f"{path}: no such review file")
    a, warnings_a = read_decisions(path_a)
    b, warnings_b = read_decisions(path_b)
    held_a, held_b = _one_reviewer(path_a, a), _one_reviewer(path_b, b)
    reviewers_a = sorted({d["reviewer"] for d in held_a.values()})
    reviewers_b = sorted({d["reviewer"] for d in held_b.values()})
    if reviewers_a and reviewers_a == reviewers_b:
        raise UserInputError(f"{path_b}: the same reviewer ({reviewers_a[0]}) as {path_a}; "
                             "agreement needs two reviewers")
    seen: set[str] = set()
    combined = []
    for decision in sorted([*a, *b], key=lambda d: d["time"]):  # one log, in the order decided
        if decision["id"] not in seen:
            seen.add(decision["id"])
            combined.append(decision)
    merged = Merged(combined, reviewers_a, reviewers_b, warnings=[*warnings_a, *warnings_b])
    shared = sorted(held_a.keys() & held_b.keys())
    pairs = [(category(held_a[s]), category(held_b[s])) for s in shared]
    merged.shared = len(shared)
    if shared:
        merged.agreement = sum(1 for x, y in pairs if x == y) / len(shared)
    merged.kappa = cohen_kappa(pairs)
    for sample in shared:
        da, db = held_a[sample], held_b[sample]
        if category(da) != category(db):
            merged.disagreements.append(Disagreement(sample, da, db))
        elif category(da) == "keep" and da.get("after") != db.get("after"):
            merged.edited_differently.append(sample)
    return merged


def write_merged(merged: Merged, out: Path) -> None:
    atomic_write(out, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in merged.decisions))
