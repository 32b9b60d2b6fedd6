"""How scoring time grows with memory size (1k, 10k, 100k knowledge items).

    python benchmarks/scoring_scale.py [--sizes 1000,10000,100000] [--samples 200] [--out FILE]

The memories are SYNTHETIC beyond BLEnD's size: a base of real BLEnD items (embedded once)
is duplicated with small Gaussian noise on the embedding (renormalized) and a suffix on the
id and text, spread over the same 10 cultures. That keeps the vector geometry realistic while
not spending an hour embedding 100k texts. For each size it reports the Chroma insert time,
the time to load the per-culture matrices, and the scoring rate of held-out BLEnD samples
(their embeddings computed beforehand, so the figure is the scorer's own cost).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import blend_cases

from caredio.memory.embeddings import default_embedder
from caredio.memory.scoring import Scorer
from caredio.memory.store import CulturalMemory, KnowledgeItem

RESULTS = Path(__file__).resolve().parent / "results"
NOISE = 0.02  # per-dimension noise on unit vectors of dimension 384: cosine to the original ~0.9


def synthetic(base: list[KnowledgeItem], vectors: np.ndarray, size: int, seed: int) -> tuple[
        list[KnowledgeItem], np.ndarray]:
    rng = np.random.default_rng(seed)
    picks = np.arange(size) % len(base)
    noisy = vectors[picks] + rng.normal(0.0, NOISE, size=(size, vectors.shape[1])).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    items = [KnowledgeItem(culture=base[p].culture, topic=base[p].topic, text=f"{base[p].text} #{n}",
                           weight=base[p].weight, source="synthetic", id=f"syn-{n}")
             for n, p in enumerate(picks)]
    return items, noisy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blend", type=Path, default=blend_cases.DEFAULT_BLEND)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--base", type=int, default=2000, help="real BLEnD items embedded as the base")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "scoring_scale.json")
    args = parser.parse_args(argv)
    embedder = default_embedder()
    data = blend_cases.load(args.blend)
    memory_ids, held_ids = blend_cases.split(data, args.seed, 0.2)
    pool = blend_cases.memory_items(data, memory_ids)
    base = [pool[i] for i in np.random.default_rng(args.seed).permutation(len(pool))[: args.base]]
    started = time.perf_counter()
    vectors = embedder.embed([item.text for item in base])
    embed_rate = len(base) / (time.perf_counter() - started)
    samples = blend_cases.cases(data, held_ids).attribution[: args.samples]
    scorer_texts = [r for _, _, r, _ in samples] + [q for _, q, _, _ in samples]
    rows = []
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        items, noisy = synthetic(base, vectors, size, args.seed)
        memory = CulturalMemory.open(embedder)
        started = time.perf_counter()
        memory.add_knowledge(items, batch_size=5000, vectors=noisy)
        insert = time.perf_counter() - started
        started = time.perf_counter()
        memory.matrices()
        load = time.perf_counter() - started
        scorer = Scorer(memory)
        scorer.warm(scorer_texts)
        cultures = memory.cultures()
        started = time.perf_counter()
        for culture, question, response, _ in samples:
            scorer.score(question, response, culture, [c for c in cultures if c != culture])
        seconds = time.perf_counter() - started
        row = {"items": size, "insert_s": round(insert, 2), "load_matrices_s": round(load, 2),
               "samples": len(samples), "scoring_s": round(seconds, 2),
               "ms_per_sample": round(1000 * seconds / len(samples), 2)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        memory.client.delete_collection("knowledge")
    print("memory items are SYNTHETIC beyond the real base: BLEnD items duplicated with noise "
          f"on their embeddings (base {len(base)} real items, embedded at {embed_rate:.0f} items/s)")
    print(f"{'items':>8}{'insert s':>10}{'load s':>9}{'ms/sample':>11}")
    for row in rows:
        print(f"{row['items']:>8}{row['insert_s']:>10.1f}{row['load_matrices_s']:>9.2f}{row['ms_per_sample']:>11.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "scoring_scale", "synthetic": True, "noise": NOISE,
                                    "base_items": len(base), "embed_items_per_s": round(embed_rate, 1),
                                    "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
