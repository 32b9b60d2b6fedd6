"""Validate the representativeness and distinctiveness scorers against BLEnD's human labels.

    python benchmarks/scorer_validation.py [--blend DIR] [--seed 0] [--out FILE] [--tune]

1. Question ids (the same ~500 in every country) are shuffled with a fixed seed and split into
   a memory part (80%) and a held-out part (20%).
2. The memory part of all countries is ingested into a fresh temporary memory (items/s).
3. Held-out samples are built from the held-out questions (question without the country, the
   response stating the annotators' answers) and scored by the loop's own ``Scorer``:
   - attribution: top-1 / top-3 of ``predicted_culture`` among all countries (chance 1/N);
   - representativeness: pairwise accuracy of R ranking a majority answer (>= 3 of 5
     annotators) above a single-vote answer of the same country and question (chance 0.5);
   - distinctiveness: AUC of D separating answers no other country gave to the question from
     answers at least 3 other countries also gave; memory only (the headline), and with the
     other countries' answers to the question as contrast responses (as the loop's critic
     supplies them — nearly the label itself, so reported apart).
4. One table is printed and the figures are written as JSON (default
   benchmarks/results/scorer_validation.json).

``--tune`` never touches the held-out part: it splits the memory part again (seed + 1) into a
tuning memory and a validation part and prints the figures of a small grid of settings there.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import blend_cases

from caredio.config import ScoringSettings
from caredio.memory.embeddings import default_embedder
from caredio.memory.scoring import Scorer
from caredio.memory.store import CulturalMemory, KnowledgeItem

RESULTS = Path(__file__).resolve().parent / "results"


def auc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = np.asarray(positives)[:, None], np.asarray(negatives)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def ingest(memory: CulturalMemory, items: list[KnowledgeItem]) -> dict[str, float]:
    started = time.perf_counter()
    added = memory.add_knowledge(items)
    seconds = time.perf_counter() - started
    return {"items": len(items), "added": added, "seconds": round(seconds, 2),
            "items_per_s": round(added / seconds, 1) if seconds else 0.0}


def evaluate(scorer: Scorer, cases: blend_cases.Cases, progress: Callable[[str], None]) -> dict[str, Any]:
    cultures = scorer.memory.cultures()
    texts = [q for _, q, _, _ in cases.attribution] + [r for _, _, r, _ in cases.attribution]
    texts += [a for _, _, a, _, _ in cases.distinct] + [t for p in cases.pairs for t in p[2:]]
    started = time.perf_counter()
    scorer.warm([r for _, _, r, _ in cases.attribution] + [q for _, q, _, _ in cases.attribution])
    top1 = top3 = 0
    for culture, question, response, _ in cases.attribution:
        others = [c for c in cultures if c != culture]
        result = scorer.score(question, response, culture, others)
        ranked = sorted(result.attribution, key=lambda c: -result.attribution[c])
        top1 += ranked[0] == culture
        top3 += culture in ranked[:3]
    scoring_seconds = time.perf_counter() - started
    progress(f"attribution: {len(cases.attribution)} samples in {scoring_seconds:.1f}s")
    scorer.warm(texts)

    wins = 0.0
    for culture, question, majority, single in cases.pairs:
        high = scorer.score(question, majority, culture, []).representativeness
        low = scorer.score(question, single, culture, []).representativeness
        wins += 1.0 if high > low else 0.5 if high == low else 0.0
    progress(f"representativeness: {len(cases.pairs)} pairs")

    plain: dict[bool, list[float]] = {True: [], False: []}
    informed: dict[bool, list[float]] = {True: [], False: []}
    for culture, question, answer, distinctive, contrast_answers in cases.distinct:
        others = [c for c in cultures if c != culture]
        plain[distinctive].append(scorer.score(question, answer, culture, others).distinctiveness)
        informed[distinctive].append(
            scorer.score(question, answer, culture, others, contrast_answers).distinctiveness)
    progress(f"distinctiveness: {len(cases.distinct)} answers")
    n = len(cases.attribution)
    return {
        "countries": len(cultures),
        "attribution_samples": n,
        "attribution_top1": round(top1 / n, 4),
        "attribution_top3": round(top3 / n, 4),
        "attribution_chance_top1": round(1 / len(cultures), 4),
        "representativeness_pairs": len(cases.pairs),
        "representativeness_pairwise_accuracy": round(wins / max(len(cases.pairs), 1), 4),
        "distinctiveness_answers": {"distinctive": len(plain[True]), "shared": len(plain[False])},
        "distinctiveness_auc": round(auc(plain[True], plain[False]), 4),
        "distinctiveness_auc_with_contrast_answers": round(auc(informed[True], informed[False]), 4),
        "scoring_seconds": round(scoring_seconds, 2),
        "scoring_samples_per_s": round(n / scoring_seconds, 1),
    }


TARGETS = {"attribution_top1": 0.45, "representativeness_pairwise_accuracy": 0.70,
           "distinctiveness_auc": 0.75}


def table(figures: dict[str, Any]) -> str:
    rows = [
        ("attribution top-1", figures["attribution_top1"], f"{figures['attribution_chance_top1']:.2f}",
         "0.45"),
        ("attribution top-3", figures["attribution_top3"], f"{3 * figures['attribution_chance_top1']:.2f}",
         ""),
        ("R pairwise accuracy", figures["representativeness_pairwise_accuracy"], "0.50", "0.70"),
        ("D AUC (memory only)", figures["distinctiveness_auc"], "0.50", "0.75"),
        ("D AUC (+ contrast answers)", figures["distinctiveness_auc_with_contrast_answers"], "0.50", ""),
    ]
    lines = [f"{'figure':<28}{'value':>8}{'chance':>8}{'target':>8}"]
    lines += [f"{name:<28}{value:>8.3f}{chance:>8}{target:>8}" for name, value, chance, target in rows]
    return "\n".join(lines)


GRID: list[dict[str, Any]] = [
    {"top_k": 5, "max_share": 0.0, "split_lists": False, "coverage_k": 8},  # the first version
    {},  # the defaults
    {"max_share": 0.0}, {"max_share": 1.0}, {"top_k": 10}, {"top_k": 40},
    {"temperature": 0.03}, {"temperature": 0.1}, {"split_lists": False},
    {"coverage_k": 5}, {"coverage_k": 20}, {"coverage_pool": 100},
]


def tune(data: blend_cases.Data, memory_ids: list[str], seed: int, log: Callable[[str], None]) -> None:
    """Grid on a validation split of the memory part; the held-out part is never read."""
    embedder = default_embedder()
    subset = {c: {q: v for q, v in qs.items() if q in set(memory_ids)} for c, qs in data.items()}
    tune_ids, validation_ids = blend_cases.split(subset, seed + 1, 0.2)
    items = blend_cases.memory_items(data, tune_ids)
    memory = CulturalMemory.open(embedder)
    log(f"tuning memory: {ingest(memory, items)}")
    cases = blend_cases.cases(data, validation_ids)
    for change in GRID:
        figures = evaluate(Scorer(memory, ScoringSettings(**change)), cases, lambda _: None)
        print(f"{json.dumps(change):<72} top1 {figures['attribution_top1']:.3f}  "
              f"top3 {figures['attribution_top3']:.3f}  R {figures['representativeness_pairwise_accuracy']:.3f}  "
              f"D {figures['distinctiveness_auc']:.3f}  D+ {figures['distinctiveness_auc_with_contrast_answers']:.3f}",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blend", type=Path, default=blend_cases.DEFAULT_BLEND, help="BLEnD data folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--held-out", type=float, default=0.2, help="share of question ids held out")
    parser.add_argument("--out", type=Path, default=RESULTS / "scorer_validation.json")
    parser.add_argument("--tune", action="store_true", help="grid on a validation split of the memory part")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    data = blend_cases.load(args.blend)
    memory_ids, held_ids = blend_cases.split(data, args.seed, args.held_out)
    log(f"{len(data)} countries; {len(memory_ids)} memory questions, {len(held_ids)} held out (seed {args.seed})")
    if args.tune:
        tune(data, memory_ids, args.seed, log)
        return 0
    embedder = default_embedder()
    with tempfile.TemporaryDirectory(prefix="caredio-validation-") as tmp:
        memory = CulturalMemory.open(embedder, path=Path(tmp) / "memory")
        ingested = ingest(memory, blend_cases.memory_items(data, memory_ids))
        log(f"ingested {ingested['added']} items in {ingested['seconds']}s ({ingested['items_per_s']} items/s)")
        settings = ScoringSettings()
        figures = evaluate(Scorer(memory, settings), blend_cases.cases(data, held_ids), log)
    report = {"benchmark": "scorer_validation", "data": "BLEnD (CC BY-SA 4.0), 10 countries",
              "seed": args.seed, "held_out_share": args.held_out, "memory_questions": len(memory_ids),
              "held_out_questions": len(held_ids), "ingest": ingested,
              "settings": settings.model_dump(), "embedding_backend": embedder.backend,
              "targets": TARGETS, **figures}
    print(table(figures))
    print(f"ingest: {ingested['added']} items, {ingested['items_per_s']} items/s; "
          f"scoring: {figures['attribution_samples']} samples, {figures['scoring_samples_per_s']} samples/s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
