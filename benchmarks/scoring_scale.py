"""How scoring time grows with memory size (default 1k and 25k knowledge items), and what each
part of a score costs (claim neighbours, rival discount, per-segment evidence) beside it off.

    python benchmarks/scoring_scale.py [--sizes 1000,25000,100000] [--samples 1000] [--out FILE]

The memories are SYNTHETIC beyond BLEnD's size: a base of real BLEnD items (embedded once)
is duplicated with small Gaussian noise on the embedding (renormalized) and a suffix on the
id and text, spread over the same 10 cultures. That keeps the vector geometry realistic while
not spending an hour embedding 100k texts. For each size it reports the Chroma insert time,
the time to load the per-culture matrices, the time to fit the attribution calibration, the
time to embed the samples' texts (in batches), and the time to score the held-out BLEnD samples
against all cultures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import blend_cases

from caredio.config.settings import ScoringSettings
from caredio.memory.embeddings import default_embedder
from caredio.memory.items import KnowledgeItem, claim_of
from caredio.memory.scoring import Scorer
from caredio.memory.store import CulturalMemory

RESULTS = Path(__file__).resolve().parent / "results"
BLOCK = 100  # samples scored by one scorer before the other takes its turn
NOISE = 0.02  # per-dimension noise on unit vectors of dimension 384: cosine to the original ~0.9


def synthetic(base: list[KnowledgeItem], vectors: np.ndarray, claims: np.ndarray, size: int,
              seed: int) -> tuple[list[KnowledgeItem], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    picks = np.arange(size) % len(base)

    def noisy(rows: np.ndarray) -> np.ndarray:
        out = rows[picks] + rng.normal(0.0, NOISE, size=(size, rows.shape[1])).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    items = [KnowledgeItem(culture=base[p].culture, topic=base[p].topic, text=f"{base[p].text} #{n}",
                           weight=base[p].weight, source="synthetic", id=f"syn-{n}")
             for n, p in enumerate(picks)]
    return items, noisy(vectors), noisy(claims)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blend", type=Path, default=blend_cases.DEFAULT_BLEND)
    parser.add_argument("--sizes", default="1000,25000")
    parser.add_argument("--base", type=int, default=2000, help="real BLEnD items embedded as the base")
    parser.add_argument("--samples", type=int, default=1000)
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
    claims = embedder.embed([claim_of(item.text) or item.text for item in base])
    cases = blend_cases.cases(data, held_ids)
    samples = (cases.attribution + [(c, q, a, {}) for c, q, a, _, _ in cases.distinct])[: args.samples]
    scorer_texts = [r for _, _, r, _ in samples] + [q for _, q, _, _ in samples]
    rows = []
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        items, noisy, noisy_claims = synthetic(base, vectors, claims, size, args.seed)
        memory = CulturalMemory.open(embedder)
        started = time.perf_counter()
        memory.add_knowledge(items, batch_size=5000, vectors=noisy, claim_vectors=noisy_claims)
        insert = time.perf_counter() - started
        started = time.perf_counter()
        memory.matrices()
        load = time.perf_counter() - started
        scorer = Scorer(memory)
        started = time.perf_counter()
        scorer.calibration()
        calibrate = time.perf_counter() - started
        started, cpu_started = time.perf_counter(), time.process_time()
        scorer.warm(scorer_texts)
        warm, warm_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        cultures = memory.cultures()
        # Side by side, interleaved in blocks so all see the same load: the question gate
        # without its claim neighbours (one product fewer over every culture's claims), D
        # without the rival-overlap discount (one maximum fewer over every rival's claims), and
        # the score without its per-segment evidence (scoring.explain off).
        alternates = {"without_claim_neighbours": Scorer(memory, ScoringSettings(gate_neighbours=0)),
                      "without_rival_discount": Scorer(memory, ScoringSettings(rival_overlap_slope=0.0)),
                      "without_evidence": Scorer(memory, ScoringSettings(explain=False))}
        for alternate in alternates.values():
            alternate.calibration()
        seconds = cpu = 0.0
        alternate_cpu = dict.fromkeys(alternates, 0.0)
        for block in range(0, len(samples), BLOCK):
            for name, judge in (("caredio", scorer), *alternates.items()):
                started, cpu_started = time.perf_counter(), time.process_time()
                for culture, question, response, _ in samples[block : block + BLOCK]:
                    judge.score(question, response, culture, [c for c in cultures if c != culture])
                # CPU time as well as wall time: on a shared machine the wall time mostly
                # measures the load.
                if judge is scorer:
                    seconds += time.perf_counter() - started
                    cpu += time.process_time() - cpu_started
                else:
                    alternate_cpu[name] += time.process_time() - cpu_started
        row = {"items": size, "insert_s": round(insert, 2), "load_matrices_s": round(load, 2),
               "calibration_s": round(calibrate, 2), "embedding_s": round(warm, 2),
               "embedding_cpu_s": round(warm_cpu, 2),
               "samples": len(samples), "scoring_s": round(seconds, 2),
               "ms_per_sample": round(1000 * seconds / len(samples), 2),
               "cpu_ms_per_sample": round(1000 * cpu / len(samples), 2),
               **{f"cpu_ms_per_sample_{name}": round(1000 * value / len(samples), 2)
                  for name, value in alternate_cpu.items()},
               "load_average": round(os.getloadavg()[0], 1)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        memory.client.delete_collection("knowledge")
        memory.client.delete_collection("knowledge_claims")
    print("memory items are SYNTHETIC beyond the real base: BLEnD items duplicated with noise "
          f"on their embeddings (base {len(base)} real items, embedded at {embed_rate:.0f} items/s)")
    print(f"{'items':>8}{'insert s':>10}{'load s':>9}{'calibrate s':>13}{'embed s':>9}"
          f"{'score s':>9}{'ms/sample':>11}{'CPU ms':>8}{'no neighbours':>15}{'no rival discount':>19}"
          f"{'no evidence':>13}{'load':>6}"
          f"  ({len(samples)} samples, contrast = all)")
    for row in rows:
        print(f"{row['items']:>8}{row['insert_s']:>10.1f}{row['load_matrices_s']:>9.2f}{row['calibration_s']:>13.2f}"
              f"{row['embedding_s']:>9.1f}{row['scoring_s']:>9.1f}{row['ms_per_sample']:>11.1f}"
              f"{row['cpu_ms_per_sample']:>8.1f}{row['cpu_ms_per_sample_without_claim_neighbours']:>15.1f}"
              f"{row['cpu_ms_per_sample_without_rival_discount']:>19.1f}"
              f"{row['cpu_ms_per_sample_without_evidence']:>13.1f}{row['load_average']:>6.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "scoring_scale", "synthetic": True, "noise": NOISE,
                                    "base_items": len(base), "embed_items_per_s": round(embed_rate, 1),
                                    "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
