"""One reviewer's session on one run: the samples as the app lists and shows them, and the
decisions it appends. Plain data in, plain data out (JSON-ready dicts): the web app
(caredio/review/app.py) only routes to it, and the benchmark times it through that app.

The list puts the samples ``selected.jsonl`` holds first, then the rest in dataset order. The
session starts at the first sample this reviewer has not decided (a restart resumes where it
stopped). A sample is shown as the reviewers left it (caredio/review/binding.py): an edited
text with the edit's scores and evidence.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caredio.conversation import question_response
from caredio.errors import UserInputError
from caredio.review.binding import Verdict, reviewed_line
from caredio.review.items import ItemTexts
from caredio.review.rescore import Rescorer
from caredio.review.store import REJECT_REASONS, ReviewLog, text_of
from caredio.rundir.formats import DATASET, LABEL_TEXT, SCORES, SELECTED, DatasetLine, Version
from caredio.rundir.reader import open_run

log = logging.getLogger(__name__)
NO_EVIDENCE = "no evidence recorded (run made before evidence)"
STEP_ORDER = {"initial": 0, "candidate": 1, "question": 2, "response": 3}
MAX_TEXT = 20_000  # characters of an edited question or answer (a paste gone wrong, not a sample)


class ReviewError(UserInputError):
    """A request the session refuses (unknown sample, empty answer): the page shows why."""


@dataclass
class Entry:
    """A sample of the list."""

    index: int
    sample_id: str
    line: DatasetLine
    selected: bool


def word_diff(before: str, after: str) -> list[list[str]]:
    """[op, text] pieces, op "eq", "del" or "ins", word by word (spaces kept)."""
    a, b = re.findall(r"\s+|\S+", before), re.findall(r"\s+|\S+", after)
    pieces: list[list[str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            pieces.append(["eq", "".join(a[i1:i2])])
            continue
        if i2 > i1:
            pieces.append(["del", "".join(a[i1:i2])])
        if j2 > j1:
            pieces.append(["ins", "".join(b[j1:j2])])
    return pieces


def scores_of(meta: dict[str, Any]) -> dict[str, float]:
    return {k: float(meta[k]) for k in SCORES if isinstance(meta.get(k), int | float)}


class ReviewSession:
    def __init__(self, run_dir: str | Path, reviewer: str, rescorer: Rescorer | None = None) -> None:
        self.run = open_run(run_dir)
        self.reviewer = reviewer
        self.log = ReviewLog.open(self.run.dir)
        self.items = ItemTexts(self.run.config.get("memory"))
        self._rescorer = rescorer
        self._lock = threading.RLock()
        self._sizes: tuple[int, int] = (-1, -1)
        self.entries: list[Entry] = []
        self.by_id: dict[str, Entry] = {}
        self.versions: dict[str, list[Version]] = {}
        self._load()
        if not self.entries:
            raise UserInputError(f"{self.run.dir / DATASET}: no samples to review yet "
                                 f"(run status: {self.run.status})")

    @property
    def rescorer(self) -> Rescorer:
        """The run's scorer for edits (built on first use: it reads the run's settings)."""
        if self._rescorer is None:
            self._rescorer = Rescorer(self.run)
        return self._rescorer

    # -- loading -------------------------------------------------------------------------------

    def _file_sizes(self) -> tuple[int, int]:
        return tuple(  # type: ignore[return-value]
            (self.run.dir / name).stat().st_size if (self.run.dir / name).exists() else 0
            for name in (DATASET, SELECTED))

    def _load(self) -> None:
        """The run's samples (again, when a run still going has written more of them)."""
        sizes = self._file_sizes()
        if sizes == self._sizes:
            return
        run = open_run(self.run.dir)  # cached file contents are per RunData: a fresh one
        lines = run.dataset
        chosen = {str(line["metadata"]["sample_id"]) for line in run.selected}
        order = sorted(range(len(lines)),
                       key=lambda i: (str(lines[i]["metadata"]["sample_id"]) not in chosen, i))
        self.entries = [Entry(n, str(lines[i]["metadata"]["sample_id"]), lines[i],
                              str(lines[i]["metadata"]["sample_id"]) in chosen)
                        for n, i in enumerate(order)]
        self.by_id = {entry.sample_id: entry for entry in self.entries}
        grouped: dict[str, list[Version]] = defaultdict(list)
        for version in run.trajectories:
            grouped[str(version["sample_id"])].append(version)
        for versions in grouped.values():
            versions.sort(key=lambda v: (int(v["round"]), STEP_ORDER.get(str(v["step"]), 9)))
        self.versions = dict(grouped)
        self.run = run
        self._sizes = sizes

    def refresh(self) -> None:
        with self._lock:
            self._load()
            self.log.refresh()

    # -- what a sample looks like now ----------------------------------------------------------

    def _current(self, entry: Entry) -> DatasetLine:
        decisions = self.log.of_sample(entry.sample_id)
        return reviewed_line(entry.line, Verdict(entry.sample_id, decisions)) if decisions else entry.line

    def summary(self, entry: Entry) -> dict[str, Any]:
        line = self._current(entry)
        meta: dict[str, Any] = dict(line["metadata"])
        mine = self.log.mine(self.reviewer).get(entry.sample_id)
        evidence = meta.get("evidence")
        return {
            "sample_id": entry.sample_id, "culture": str(meta.get("culture", "")),
            "topic": str(meta.get("topic", "")), "selected": entry.selected,
            "objective": float(meta.get("objective") or 0.0),
            "labels": sorted({str(s.get("label")) for s in evidence}) if evidence else [],
            "decision": mine["decision"] if mine else None,
            "edited": "original" in (meta.get("review") or {}),
            "others": sorted(who for who in self.log.of_sample(entry.sample_id) if who != self.reviewer),
        }

    def progress(self) -> dict[str, int]:
        mine = self.log.mine(self.reviewer)
        return {"reviewed": sum(1 for e in self.entries if e.sample_id in mine),
                "total": len(self.entries)}

    def listing(self) -> dict[str, Any]:
        self.refresh()
        with self._lock:
            summaries = [self.summary(entry) for entry in self.entries]
            start = next((s["sample_id"] for s in summaries if s["decision"] is None),
                         summaries[0]["sample_id"])
            return {"run_id": self.run.run_id, "reviewer": self.reviewer, "samples": summaries,
                    "progress": self.progress(), "start": start, "reasons": list(REJECT_REASONS),
                    "labels": {k: v for k, v in LABEL_TEXT.items()},
                    "warnings": list(self.log.warnings)}

    def entry(self, sample_id: str) -> Entry:
        entry = self.by_id.get(sample_id)
        if entry is None:
            self.refresh()
            entry = self.by_id.get(sample_id)
        if entry is None:
            raise ReviewError(f"no sample '{sample_id}' in {self.run.dir / DATASET}")
        return entry

    def detail(self, sample_id: str) -> dict[str, Any]:
        """Everything the page shows for one sample (item ids resolved to texts)."""
        with self._lock:
            entry = self.entry(sample_id)
            line = self._current(entry)
            meta: dict[str, Any] = dict(line["metadata"])
            question, response = question_response(line["messages"])
            versions = self.versions.get(sample_id, [])
            best = self._best_version(entry, versions)
            review = meta.get("review") or {}
            answers = dict(best.get("contrast_answers") or {}) if best else {}
            others = {who: d for who, d in self.log.of_sample(sample_id).items() if who != self.reviewer}
            mine = self.log.mine(self.reviewer).get(sample_id)
            return {
                **self.summary(entry),
                "question": question, "response": response,
                "scores": scores_of(meta), "attribution": meta.get("attribution") or {},
                "contrast": list(meta.get("contrast") or []),
                "evidence": self._evidence(response, meta.get("evidence"), answers),
                "contrast_answers": answers,
                "versions": self._versions(versions, review, question, response, scores_of(meta)),
                "original": review.get("original"), "edited_by": review.get("edited_by"),
                "rescore_note": review.get("rescore_note"),
                "stop_reason": meta.get("stop_reason"), "best_round": meta.get("best_round"),
                "mine": _decision_view(mine) if mine else None,
                "others": [{"reviewer": who, **_decision_view(d)} for who, d in sorted(others.items())],
            }

    @staticmethod
    def _best_version(entry: Entry, versions: Sequence[Version]) -> Version | None:
        meta = entry.line["metadata"]
        for version in versions:
            if (version["round"], version["step"]) == (meta.get("best_round"), meta.get("best_step")):
                return version
        return versions[-1] if versions else None

    @staticmethod
    def _versions(versions: Sequence[Version], review: dict[str, Any], question: str, response: str,
                  scores: dict[str, float]) -> list[dict[str, Any]]:
        """The run's versions, each diffed word by word against the one before; a reviewer's
        edit last, diffed against the text it replaced."""
        rows: list[dict[str, Any]] = [dict(v) for v in versions]
        if review.get("original"):
            rows.append({"round": None, "step": f"edited by {review.get('edited_by')}", "edit": True,
                         "question": question, "response": response, **scores})
        shown: list[dict[str, Any]] = []
        previous: dict[str, Any] | None = None
        for row in rows:
            if row.get("edit"):
                previous = review["original"]
            view: dict[str, Any] = {"round": row.get("round"), "step": row.get("step"),
                                    "scores": scores_of(row), "rejected": bool(row.get("rejected")),
                                    "critique": str(row.get("critique") or ""), "edit": bool(row.get("edit"))}
            for part in ("question", "response"):
                text = str(row.get(part) or "")
                view[part] = word_diff(str(previous[part]), text) if previous else [["eq", text]]
            shown.append(view)
            previous = row
        return shown

    def _evidence(self, response: str, evidence: Any, answers: dict[str, str]) -> dict[str, Any]:
        """The answer cut into pieces, each marked with its segment's evidence (or none)."""
        if not evidence:
            return {"recorded": False, "note": NO_EVIDENCE, "pieces": [{"text": response, "seg": None}],
                    "segments": [], "unplaced": []}
        ids = [str(s[0]) for seg in evidence for s in seg.get("support") or []]
        ids += [str(seg["rival"][1]) for seg in evidence if seg.get("rival")]
        texts = self.items.resolve(ids)
        segments = [_segment_view(seg, texts, answers) for seg in evidence]
        pieces: list[dict[str, Any]] = []
        at = 0
        unplaced = []
        for index, seg in enumerate(evidence):
            span = seg.get("span")
            if (isinstance(span, list) and len(span) == 2 and isinstance(span[0], int)
                    and at <= span[0] < span[1] <= len(response)):
                if span[0] > at:
                    pieces.append({"text": response[at:span[0]], "seg": None})
                pieces.append({"text": response[span[0]:span[1]], "seg": index})
                at = span[1]
            else:  # the scored text could not be found in the answer: listed under it
                unplaced.append(index)
        if at < len(response):
            pieces.append({"text": response[at:], "seg": None})
        return {"recorded": True, "note": "", "pieces": pieces, "segments": segments,
                "unplaced": unplaced}

    # -- decisions -----------------------------------------------------------------------------

    def decide(self, sample_id: str, decision: str, reason: str | None = None) -> dict[str, Any]:
        if decision not in ("accept", "reject"):
            raise ReviewError(f"decision: '{decision}' is not accept or reject")
        if decision == "reject" and not (reason or "").strip():
            raise ReviewError("reject: give a reason (pick one or type one)")
        with self._lock:
            entry = self.entry(sample_id)
            line = self._current(entry)
            text = text_of(*question_response(line["messages"]))
            scores = scores_of(dict(line["metadata"]))
            self.log.append({
                "reviewer": self.reviewer, "sample_id": sample_id, "decision": decision,
                "run_id": self.run.run_id, "reason": (reason or "").strip()[:500] if decision == "reject" else None,
                "before": text, "after": text, "scores_before": scores, "scores_after": scores,
            })
            return {"sample": self.summary(entry), "progress": self.progress()}

    def edit(self, sample_id: str, question: str, response: str) -> dict[str, Any]:
        """Save an edit: re-scored by the run's scorer first, appended whatever that gives."""
        question, response = question.strip(), response.strip()
        if not question or not response:
            raise ReviewError("edit: the question and the answer must not be empty")
        if len(question) > MAX_TEXT or len(response) > MAX_TEXT:
            raise ReviewError(f"edit: at most {MAX_TEXT} characters per text")
        with self._lock:
            entry = self.entry(sample_id)
            line = self._current(entry)
            before = text_of(*question_response(line["messages"]))
            if (before["question"], before["response"]) == (question, response):
                raise ReviewError("edit: nothing changed")
            record: dict[str, Any] = {
                "reviewer": self.reviewer, "sample_id": sample_id, "decision": "edit",
                "run_id": self.run.run_id, "before": before, "after": text_of(question, response),
                "scores_before": scores_of(dict(line["metadata"])), "scores_after": None,
            }
            record.update(self._rescore(entry, question, response))
            self.log.append(record)
            return {"detail": self.detail(sample_id), "progress": self.progress()}

    def _rescore(self, entry: Entry, question: str, response: str) -> dict[str, Any]:
        meta = entry.line["metadata"]
        best = self._best_version(entry, self.versions.get(entry.sample_id, []))
        original_question, _ = question_response(entry.line["messages"])
        answers = dict(best.get("contrast_answers") or {}) if best else {}
        notes = []
        if answers and question != original_question:
            answers = {}
            notes.append("the contrast answers answer the run's question, not the edited one: "
                         "left out of the evidence")
        try:
            scored = self.rescorer.score(question, response, str(meta["culture"]),
                                          list(meta.get("contrast") or []), answers,
                                          list(best.get("grounding_ids") or []) if best else [])
        except UserInputError as exc:  # the memory is in use by a run, a server is gone
            return {"rescore_note": f"not re-scored: {exc}"}
        except Exception as exc:  # the edit is kept (nothing a reviewer does is lost); the log has the traceback
            log.exception("re-scoring %s failed", entry.sample_id)
            return {"rescore_note": f"not re-scored: {type(exc).__name__}: {exc}"}
        out: dict[str, Any] = {"scores_after": scored.scores, "evidence_after": scored.evidence}
        notes += scored.notes
        if notes:
            out["rescore_note"] = "; ".join(notes)
        return out

    def undo(self) -> dict[str, Any]:
        """Take back this reviewer's latest standing decision; returns the sample it was on."""
        with self._lock:
            last = self.log.last_standing(self.reviewer)
            if last is None:
                raise ReviewError("undo: nothing to undo")
            self.log.append({"reviewer": self.reviewer, "sample_id": last["sample_id"],
                             "decision": "undo", "undoes": last["id"], "run_id": self.run.run_id})
            return {"sample_id": last["sample_id"], "undone": last["decision"],
                    "progress": self.progress()}


def _decision_view(decision: Any) -> dict[str, Any]:
    return {"decision": decision["decision"], "reason": decision.get("reason"), "time": decision["time"],
            "note": decision.get("rescore_note")}


def _segment_view(seg: Any, texts: dict[str, tuple[str, str]], answers: dict[str, str]) -> dict[str, Any]:
    label = str(seg.get("label", ""))
    rival = seg.get("rival")
    rival_view = None
    if isinstance(rival, list) and len(rival) >= 3:
        culture, item, similarity = str(rival[0]), str(rival[1]), float(rival[2])
        # A rival may be the compared culture's contrast answer rather than one of its items.
        text = answers.get(culture, "") if item == "contrast answer" else texts.get(item, ("", ""))[1]
        rival_view = {"culture": culture, "id": item, "similarity": similarity, "text": text}
    return {
        "label": label,
        "label_text": LABEL_TEXT.get(label, label) + (
            f" ({seg['shared_with']})" if label == "shared" and seg.get("shared_with") else ""),
        "text": seg.get("text"),
        **{k: float(seg.get(k) or 0.0) for k in ("relevance", "weight", "attribution", "r_share", "d_share")},
        "support": [{"id": str(item), "similarity": float(sim), "culture": texts.get(str(item), ("", ""))[0],
                     "text": texts.get(str(item), ("", ""))[1]} for item, sim in (seg.get("support") or [])],
        "rival": rival_view,
    }
