"""What reviewers wrote or confirmed, back into memory (``caredio memory ingest --from-review``).

* A kept sample (accepted, or edited by a reviewer) becomes a knowledge item of its culture and
  topic, written "question — answer" (the claim form the scorer matches an answer against,
  docs/scorers.md), with ``source: human``, weight 1.0 (a person vouched for it, as consensus
  1.0 means "when unknown, trust it"), and the reviewer and run recorded in its metadata.
* Every reviewed sample goes into memory's samples (memory/samples.py), marked with the
  decision: a kept one as accepted (later runs and selection avoid near-duplicates of it, the
  culture expert is told its question was asked), a rejected one as rejected — selection's
  near-duplicate rule and its diversity term see it like any earlier sample, so a later run
  cannot select a near-copy of an answer a person rejected, but the culture expert is not told
  its question was covered (a rejected sample covered nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caredio.conversation import question_response
from caredio.errors import UserInputError
from caredio.memory.items import CLAIM_SEPARATOR, KnowledgeItem
from caredio.review.binding import load_binding, reviewed_line
from caredio.rundir.formats import REVIEW
from caredio.rundir.reader import open_run

HUMAN = "human"


@dataclass
class Feedback:
    items: list[KnowledgeItem] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)  # for memory's samples collection
    edited: int = 0
    confirmed: int = 0
    rejected: int = 0


def review_feedback(run_dir: str | Path) -> Feedback:
    """The knowledge and sample records a run's reviews give; refused when it has none."""
    run = open_run(run_dir)
    binding = load_binding(run.dir)
    if not binding.reviewed:
        raise UserInputError(f"--from-review: {run.dir / REVIEW} holds no decision yet; "
                             f"review first (`caredio review {run.dir}`)")
    out = Feedback()
    for line in run.dataset:
        meta: dict[str, Any] = dict(line["metadata"])
        sample_id = str(meta["sample_id"])
        verdict = binding.verdicts.get(sample_id)
        if verdict is None or verdict.status == "unreviewed":
            continue
        reviewed = reviewed_line(line, verdict)
        reviewed_meta: dict[str, Any] = dict(reviewed["metadata"])
        review = reviewed_meta["review"]
        question, response = question_response(reviewed["messages"])
        run_id = str(meta.get("run_id") or run.run_id)
        record: dict[str, Any] = {**dict(reviewed["metadata"]), "question": question,
                                  "response": response, "run_id": run_id}
        record.pop("review", None)
        if verdict.status == "rejected":
            out.rejected += 1
            record.update(reviewed="reject", reviewer=", ".join(sorted(
                who for who, d in verdict.decisions.items() if d["decision"] == "reject")),
                reason="; ".join(verdict.reasons()))
            out.samples.append(record)
            continue
        edited = "original" in review
        reviewer = str(review.get("edited_by")) if edited else ", ".join(review["reviewers"])
        out.edited += edited
        out.confirmed += not edited
        record.update(reviewed="edit" if edited else "accept", reviewer=reviewer)
        out.samples.append(record)
        # The question's own " — " would move the claim's start: it is not the separator here.
        claim = f"{question.replace(CLAIM_SEPARATOR, ' - ')}{CLAIM_SEPARATOR}{response}"
        out.items.append(KnowledgeItem(culture=str(meta["culture"]), text=claim,
                                       topic=str(meta.get("topic") or "general"), weight=1.0,
                                       source=HUMAN, reviewer=reviewer, run_id=run_id))
    return out


def ingest_review(feedback: Feedback, memory: Any) -> int:
    """Write the feedback into ``memory``; returns how many knowledge items were new."""
    added = int(memory.add_knowledge(feedback.items))
    memory.samples.add(feedback.samples)
    return added
