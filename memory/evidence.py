"""Why each segment of an answer scored as it did: the evidence, from the score's own pass.

Computed from the arrays :meth:`Scorer.score` already holds for the sample (no second scoring
path): the gate's relevance and weight, the attribution, R's coverage and D's discounts, and the
segments' similarities to every culture's items with the held-out items masked as the scores
masked them. Each segment gets one label (caredio/rundir/formats.py ``LABELS``), in this
precedence:

* ``repeated`` — says again what an earlier segment said (dropped before scoring);
* ``copied`` — repeats an item shown to the agents word for word (it earns nothing);
* ``off_topic`` — does not bear on the question (weight 0);
* ``shared`` — a compared culture's knowledge (or contrast answer) states it; or the culture's
  memory holds it but it is attributed to the target no more than to a rival (generic);
* ``unsupported`` — nothing in the culture's memory comes near it (a possible invention), and
  no compared culture states it either;
* ``supported`` — the rest: on the question, the culture's own, and its knowledge holds it.

Stored compactly (ids and numbers) in trajectories.jsonl and the dataset line; texts are
resolved on display (caredio/rundir/evidence.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from caredio.config.settings import ScoringSettings
from caredio.culture_names import neutralize
from caredio.memory.attribution import softmax
from caredio.memory.sample_score import ScoreWork
from caredio.memory.segments import repeat_key

SUPPORT_ITEMS = 2  # supporting items kept per segment
Scale = Callable[[np.ndarray], np.ndarray]


def segment_evidence(work: ScoreWork, settings: ScoringSettings, scaled: Scale,
                     split: Callable[[str], list[str]]) -> list[dict[str, Any]]:
    """One entry per segment of the response as split, in order (repeats included)."""
    spans = _spans(work, split)
    kept_rows = {int(u): row for row, u in enumerate(work.kept)}  # unique index -> scored row
    unique_index = {repeat_key(text): i for i, text in enumerate(work.unique)}
    kept = _kept_evidence(work, settings, scaled) if len(work.segments) else []
    seen: set[str] = set()
    entries: list[dict[str, Any]] = []
    for position, text in enumerate(work.split):
        key = repeat_key(text)
        index = unique_index.get(key)
        if index is not None and index in kept_rows and key not in seen:
            entry = dict(kept[kept_rows[index]])
        elif index is None:  # only names and function words ("In Japan,"): says nothing
            entry = _empty("off_topic")
        else:  # a repeat of an earlier segment, word for word or nearly
            entry = _empty("repeated")
        seen.add(key)
        span = spans[position]
        if span is not None:
            entry["span"] = list(span)
        else:
            entry["text"] = text
        entries.append(entry)
    return entries


def _kept_evidence(work: ScoreWork, settings: ScoringSettings, scaled: Scale) -> list[dict[str, Any]]:
    cultures, target = work.cultures, work.cultures[0]
    rows = len(work.segments)
    probs = softmax(work.logits)[:, 0] if work.logits.size else np.zeros(rows)
    cutoff = 1.2 / len(cultures)
    r_share = _r_shares(work, scaled)
    heard = work.heard if len(work.heard) == rows else np.zeros(rows)
    d_weight = heard * work.unshared * work.known * probs
    d_share = d_weight / d_weight.sum() if d_weight.sum() > 0 else np.zeros(rows)
    # Whether the culture's memory holds the statement at all: its nearest claim, shown items
    # included (as D asks it, memory/rivals.py), on the similarity scale.
    own = scaled(work.claim_sims[target].max(axis=1)) if work.claim_sims[target].shape[1] else np.full(rows, -1.0)
    support = _support(work, scaled)
    rivals = _rivals(work, scaled)
    entries = []
    for row in range(rows):
        rival = rivals[row]
        if work.copied[row]:
            label = "copied"
        elif work.gate[row] <= 0.0:
            label = "off_topic"
        elif work.unshared[row] < 0.5:  # a compared culture's item or contrast answer states it
            label = "shared"
        elif own[row] < settings.known_at:
            label = "unsupported"
        elif probs[row] < cutoff:  # the culture's memory holds it, but a rival's as much
            label = "shared"
        else:
            label = "supported"
        entry: dict[str, Any] = {
            "label": label, "relevance": _r(work.relevance[row]), "weight": _r(work.gate[row]),
            "attribution": _r(probs[row]), "r_share": _r(r_share[row]), "d_share": _r(d_share[row]),
            "support": support[row],
        }
        if rival is not None:
            entry["rival"] = rival
        if label == "shared":
            entry["shared_with"] = rival[0] if rival is not None and work.unshared[row] < 0.5 else _likeliest_rival(
                work, row, cultures)
        entries.append(entry)
    return entries


def _r_shares(work: ScoreWork, scaled: Scale) -> np.ndarray:
    """Share of R each segment carried: each of the question's pool items credits (weight x
    coverage) to the segment that covers it best, as R's coverage counts it."""
    pool = work.pools[work.cultures[0]]
    rows = len(work.segments)
    if not pool.size or len(work.counted) != rows or work.counted.sum() <= 0:
        return np.zeros(rows)
    coverage = np.clip(scaled(work.vectors @ work.target.embeddings[pool].T), 0.0, 1.0) * work.counted[:, None]
    credit = coverage.max(axis=0) * work.target.weights[pool]
    winner = coverage.argmax(axis=0)
    shares = np.bincount(winner, weights=credit, minlength=rows)
    return shares / shares.sum() if shares.sum() > 0 else shares


def _support(work: ScoreWork, scaled: Scale) -> list[list[list[Any]]]:
    """Per segment, the target's best supporting items [id, similarity] among those that may
    score this sample (its held-out items masked, as the scores masked them)."""
    view = work.views[work.cultures[0]]
    sims = scaled(work.claim_sims[work.cultures[0]])
    if view.mask is not None:
        sims = sims.copy()
        sims[:, view.mask] = -np.inf
    found = []
    for row in sims:
        order = np.argsort(-row)[:SUPPORT_ITEMS]
        found.append([[view.matrix.ids[i], _r(row[i])] for i in order if np.isfinite(row[i])])
    return found


def _rivals(work: ScoreWork, scaled: Scale) -> list[list[Any] | None]:
    """Per segment, the compared culture's item (or contrast answer) nearest to it."""
    best: list[list[Any] | None] = [None] * len(work.segments)
    for culture in work.cultures[1:]:
        view = work.views[culture]
        sims = scaled(work.claim_sims[culture])
        if view.mask is not None:
            sims = sims.copy()
            sims[:, view.mask] = -np.inf
        extra = work.evidence.get(culture)
        answer_sims = scaled(work.vectors @ extra.T).max(axis=1) if extra is not None and len(extra) else None
        for row in range(len(work.segments)):
            if sims.shape[1] and np.isfinite(sims[row].max()):
                column = int(np.argmax(sims[row]))
                candidate: list[Any] = [culture, view.matrix.ids[column], _r(sims[row, column])]
                if best[row] is None or candidate[2] > best[row][2]:  # type: ignore[index]
                    best[row] = candidate
            if answer_sims is not None and (best[row] is None or answer_sims[row] > best[row][2]):  # type: ignore[index]
                best[row] = [culture, "contrast answer", _r(answer_sims[row])]
    return best


def _likeliest_rival(work: ScoreWork, row: int, cultures: list[str]) -> str:
    probs = softmax(work.logits[row])
    return cultures[1 + int(np.argmax(probs[1:]))]


def _spans(work: ScoreWork, split: Callable[[str], list[str]]) -> list[tuple[int, int] | None]:
    """Where each scored segment is in the response as given. The response is split the same
    way without neutralizing names; a piece that neutralizes to the scored segment is found in
    the text from where the last one ended. ``None`` where the two splits do not line up (a
    name written with a full stop, "U.S.", splits differently): the entry then keeps its text."""
    pieces = split(work.response)
    if len(pieces) != len(work.split):
        return [None] * len(work.split)
    spans: list[tuple[int, int] | None] = []
    at = 0
    for piece, scored in zip(pieces, work.split, strict=True):
        start = work.response.find(piece, at)
        if start < 0 or repeat_key(neutralize(piece, work.named)) != repeat_key(scored):
            spans.append(None)
            continue
        spans.append((start, start + len(piece)))
        at = start + len(piece)
    return spans


def _empty(label: str) -> dict[str, Any]:
    return {"label": label, "relevance": 0.0, "weight": 0.0, "attribution": 0.0, "r_share": 0.0,
            "d_share": 0.0, "support": []}


def _r(value: float) -> float:
    return round(float(value), 3)
