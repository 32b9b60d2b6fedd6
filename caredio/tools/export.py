"""What leaves a run directory: the selection (``selected.jsonl``) and the export formats.

Formats are the ones fine-tuning stacks read without glue code: OpenAI chat JSONL (only the
``messages`` key, since OpenAI's fine-tuning API rejects unknown keys), ShareGPT JSON
(``conversations`` of ``from``/``value`` turns, as LLaMA-Factory and axolotl expect), TRL's
prompt-completion JSONL with a LoRA recipe (:mod:`caredio.tools.handoff`) and a
Hugging Face ``datasets`` folder with a dataset card that says where the data came from: the
model, the template hashes and the licenses of the knowledge it was grounded in. Files are
written to a temporary name and renamed, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from caredio.conversation import line_text, question_response
from caredio.errors import UserInputError
from caredio.memory.selection import Pick, select_detailed
from caredio.review.binding import describe, honour_reviews
from caredio.rundir.files import atomic_folder, atomic_write
from caredio.rundir.formats import SCORES, SELECTED, DatasetLine
from caredio.rundir.reader import RunData, open_run
from caredio.rundir.recorder import write_selected

log = logging.getLogger(__name__)
FORMATS = ("openai", "sharegpt", "hf", "trl")
DEFAULT_NAMES = {"openai": "openai.jsonl", "sharegpt": "sharegpt.json", "hf": "hf", "trl": "trl"}
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}
SOURCE_LICENSES = {
    "starter": "CAReDiO starter pack: short knowledge statements written for the project and "
    "shipped with the package (Apache-2.0).",
    "blend": "BLEnD (Myung et al., NeurIPS 2024 Datasets and Benchmarks): CC BY-SA 4.0. Data "
    "derived from it should credit BLEnD and be shared under the same license.",
    "llm": "Knowledge elicited from the generating model: subject to that model's license and "
    "terms of use.",
    "user": "User-supplied knowledge files: their license is the user's to check and state.",
    "human": "Answers written or confirmed by the project's reviewers (`caredio review`): their "
    "license is the reviewers' (or their organisation's) to state.",
}


# -- selection -------------------------------------------------------------------------------


@dataclass
class SelectResult:
    picks: list[Pick]
    skipped: list[Pick]
    candidates: int
    prior: int
    path: Path
    review: Counter[str] = field(default_factory=Counter)  # what review decisions did


def select_run(
    run_dir: str | Path,
    budget: int,
    per_culture: bool = True,
    diversity: float = 0.5,
    duplicate_threshold: float = 0.95,
    embedder: Any = None,
    reviewed_only: bool = False,
) -> SelectResult:
    """Greedy MMR over the run's dataset, against earlier runs' samples in its memory too.

    Review decisions bind (caredio/review/binding.py): rejected samples are not candidates,
    edited ones compete with their edited text and re-scored J; ``reviewed_only`` keeps to the
    samples a reviewer kept."""
    if budget < 1:
        raise UserInputError(f"--budget: must be at least 1, not {budget}")
    if diversity < 0:
        raise UserInputError(f"--diversity: must be 0 or more, not {diversity}")
    if not 0 < duplicate_threshold <= 1:
        raise UserInputError(f"--duplicate-threshold: must be in (0, 1], not {duplicate_threshold}")
    run = open_run(run_dir)
    lines, review = honour_reviews(run.dir, run.samples(), reviewed_only)
    if not lines:
        raise UserInputError(f"{run.dir}: no sample is left to select from after review ({describe(review)})")
    if embedder is None:
        from caredio.memory.embeddings import default_embedder

        embedder = default_embedder()
    prior_ids, prior_vectors = earlier_samples(run, embedder)
    vectors = embedder.embed([line_text(line) for line in lines])
    result = select_detailed(
        lines,
        embedder,
        budget,
        per_culture,
        diversity,
        duplicate_threshold,
        prior_ids,
        prior_vectors,
        vectors=vectors,
    )
    path = write_selected(run.dir, [lines[p.index] for p in result.picks])
    return SelectResult(result.picks, result.skipped, len(lines), len(prior_ids), path, review)


def earlier_samples(run: RunData, embedder: Any) -> tuple[list[str], Any]:
    """Samples that earlier runs accepted into this run's memory (none for an ephemeral one)."""
    memory_config = run.config.get("memory") or {}
    path, url = memory_config.get("path"), memory_config.get("url")
    if not url and (not path or path == ":memory:" or not Path(path).exists()):
        return [], None
    from caredio.config.settings import Settings
    from caredio.run.job import open_memory

    memory = open_memory(Settings(**run.config), embedder)
    ids, vectors = memory.samples.embeddings(exclude_run=run.run_id)
    return ids, vectors if ids else None


# -- export ----------------------------------------------------------------------------------


class Exported(NamedTuple):
    path: Path
    samples: int
    review: Counter[str]  # what review decisions did (caredio/review/binding.py)


def export(
    run_dir: str | Path, fmt: str, out: str | Path | None = None, selected: bool = False,
    reviewed_only: bool = False,
) -> Exported:
    """Write the run's samples in ``fmt``, as reviewers left them: rejected ones out, edited
    ones with the edit (the original and the reviewer in metadata where the format has it)."""
    if fmt not in FORMATS:
        raise UserInputError(f"--format: unknown format '{fmt}' (one of {', '.join(FORMATS)})")
    run = open_run(run_dir)
    lines = run.samples(selected)
    if not lines:
        raise UserInputError(f"{run.dir / SELECTED}: holds no samples")
    lines, review = honour_reviews(run.dir, lines, reviewed_only)
    if not lines:
        raise UserInputError(f"{run.dir}: no sample is left to export after review ({describe(review)})")
    target = Path(out) if out else run.dir / "export" / DEFAULT_NAMES[fmt]
    if fmt not in ("hf", "trl") and target.is_dir():
        raise UserInputError(f"--out: {target} is a directory; give a file path")
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "openai":
        atomic_write(
            target,
            "".join(
                json.dumps({"messages": line["messages"]}, ensure_ascii=False) + "\n"
                for line in lines
            ),
        )
    elif fmt == "sharegpt":
        atomic_write(
            target,
            json.dumps([sharegpt_record(line) for line in lines], ensure_ascii=False, indent=2)
            + "\n",
        )
    elif fmt == "trl":
        from caredio.tools.handoff import write_trl

        write_trl(run, lines, target, selected)
    else:
        write_hf(run, lines, target, selected)
    return Exported(target, len(lines), review)


def sharegpt_record(line: DatasetLine) -> dict[str, Any]:
    meta = line["metadata"]
    record: dict[str, Any] = {"id": meta["sample_id"]}
    system = [m["content"] for m in line["messages"] if m["role"] == "system"]
    if system:
        record["system"] = system[0]
    record["conversations"] = [
        {"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]}
        for m in line["messages"]
        if m["role"] != "system"
    ]
    record.update({k: meta.get(k) for k in ("culture", "topic", *SCORES)})
    if "review" in meta:
        record["review"] = meta["review"]
    return record


def hf_rows(lines: list[DatasetLine]) -> list[dict[str, Any]]:
    """Flat columns; attribution (its keys differ per culture) as a JSON string."""
    rows = []
    for line in lines:
        meta: dict[str, Any] = dict(line["metadata"])  # scores read by name below
        question, response = question_response(line["messages"])
        rows.append(
            {
                "messages": [
                    {"role": m["role"], "content": m["content"]} for m in line["messages"]
                ],
                "question": question,
                "response": response,
                "sample_id": meta["sample_id"],
                "run_id": str(meta.get("run_id", "")),
                "culture": meta["culture"],
                "topic": str(meta.get("topic", "")),
                **{k: float(meta.get(k) or 0.0) for k in SCORES},
                "rounds": int(meta.get("rounds") or 0),
                "best_round": int(meta.get("best_round") or 0),
                "attribution": json.dumps(meta.get("attribution") or {}, ensure_ascii=False),
                # JSON: the reviewers' decision, and the run's text where a reviewer edited it
                "review": json.dumps(meta.get("review") or {}, ensure_ascii=False),
            }
        )
    return rows


def write_hf(run: RunData, lines: list[DatasetLine], target: Path, selected: bool) -> None:
    """save_to_disk into a temporary sibling, add the card, then swap it in."""
    try:
        from datasets import Dataset, disable_progress_bars

        disable_progress_bars()  # a progress bar per save is noise on a CLI and in CI logs
    except ImportError:
        raise UserInputError(
            "--format hf: needs the 'datasets' package: pip install 'caredio[export]'"
        ) from None
    if target.exists() and not (target / "dataset_info.json").exists():
        raise UserInputError(
            f"--out: {target} exists and is not a datasets folder; refusing to replace it"
        )
    with atomic_folder(target) as tmp:
        Dataset.from_list(hf_rows(lines)).save_to_disk(str(tmp / "data"))
        for item in (tmp / "data").iterdir():
            item.rename(tmp / item.name)
        (tmp / "data").rmdir()
        (tmp / "README.md").write_text(dataset_card(run, lines, selected), encoding="utf-8")


def review_lines(metas: list[dict[str, Any]]) -> list[str]:
    """The dataset card's word on human review (nothing for an unreviewed dataset)."""
    reviewed = [m["review"] for m in metas if m.get("review")]
    if not reviewed:
        return []
    edited = sum(1 for r in reviewed if r.get("original"))
    people = sorted({who for r in reviewed for who in r.get("reviewers", [])})
    return ["", "## Human review", "",
            f"{len(reviewed)} of {len(metas)} samples were reviewed and kept by people "
            f"({', '.join(people) or 'unnamed'}), {edited} of them with an edited text; samples "
            "a reviewer rejected are not in this dataset (`caredio review`)."]


# -- dataset card ----------------------------------------------------------------------------


def knowledge_sources(run: RunData) -> dict[str, int]:
    """Knowledge sources behind the run: counted in a persistent memory, else inferred."""
    memory_config = run.config.get("memory") or {}
    path = memory_config.get("path")
    cultures = set(run.config.get("cultures") or [])  # and their contrast cultures: D uses those
    for line in run.dataset:
        cultures.update(line["metadata"].get("contrast") or [])
    if path and path != ":memory:" and Path(path).exists() and not memory_config.get("url"):
        try:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            client = chromadb.PersistentClient(
                path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
            )
            metas = client.get_collection("knowledge").get(include=["metadatas"])["metadatas"] or []
            found = Counter(
                str(m.get("source", "user"))
                for m in metas
                if not cultures or m.get("culture") in cultures
            )
            if found:
                return dict(found)
        except Exception as exc:  # noqa: BLE001 - the card still says what the config implies
            log.warning("could not count knowledge sources in %s: %s", path, exc)
    counts: Counter[str] = Counter()
    if memory_config.get("starter_pack", True):
        counts["starter"] = 0
    if any(t.get("sample_id") == "_memory" for t in run.turns):
        counts["llm"] = 0
    return dict(counts)


def _stats(values: list[float]) -> str:
    if not values:
        return "| – | – | – | – |"
    spread = statistics.pstdev(values) if len(values) > 1 else 0.0
    return (
        f"| {statistics.fmean(values):.3f} | {spread:.3f} | {min(values):.3f} | {max(values):.3f} |"
    )


def dataset_card(run: RunData, lines: list[DatasetLine], selected: bool) -> str:
    """README.md for the HF folder: contents, scores, provenance and licenses."""
    metas: list[dict[str, Any]] = [dict(line["metadata"]) for line in lines]
    cultures = Counter(str(m["culture"]) for m in metas)
    topics = Counter(str(m.get("topic", "")) for m in metas)
    sources = knowledge_sources(run)
    hashes = run.run.get("template_hashes") or {
        n: v.get("hash") for n, v in run.template_index.items()
    }
    out = [
        "---",
        "license: other",
        "task_categories:\n- text-generation",
        "language:\n- en",
        "tags:\n- cultural-alignment\n- caredio\n- synthetic",
        f"pretty_name: CAReDiO {run.run_id}",
        "---",
        f"# CAReDiO dataset `{run.run_id}`",
        "",
        f"{len(lines)} culture-sensitive question/answer conversations "
        f"({'selected subset' if selected else 'all converged samples'}), optimized by the CAReDiO "
        "agents for representativeness (R) and distinctiveness (D); J = λR + (1−λ)D.",
        "",
        "## Contents",
        "",
        "| culture | samples |",
        "|---|---|",
        *[f"| {c} | {n} |" for c, n in sorted(cultures.items())],
        "",
        "| topic | samples |",
        "|---|---|",
        *[f"| {t} | {n} |" for t, n in sorted(topics.items())],
        "",
        "## Scores",
        "",
        "| score | mean | std | min | max |",
        "|---|---|---|---|---|",
        *[f"| {k} {_stats([float(m.get(k) or 0) for m in metas])}" for k in SCORES],
        "",
        "## Provenance",
        "",
        f"- model: `{run.run.get('model', '?')}` at `{run.run.get('endpoint', '?')}`"
        f"{' (embedded llama.cpp server)' if run.run.get('embedded_model') else ''}",
        f"- run status: {run.status}; config hash `{run.run.get('config_hash', '?')}`; "
        f"templates hash `{run.run.get('templates_hash', '?')}`",
        *[f"- template `{name}`: `{value}`" for name, value in sorted(hashes.items())],
        "",
        "## Licenses of the knowledge the data was grounded in",
        "",
        *[
            f"- `{source}`{f' ({n} items)' if n else ''}: "
            f"{SOURCE_LICENSES.get(source, SOURCE_LICENSES['user'])}"
            for source, n in sorted(sources.items())
        ],
        "",
        "The generated text is also subject to the license and terms of the model that wrote it. "
        "Columns: `messages` (OpenAI chat format), `question`, `response`, `sample_id`, `run_id`, "
        "`culture`, `topic`, `representativeness`, `distinctiveness`, `objective`, `rounds`, "
        "`best_round`, `attribution` (JSON: culture → probability), `review` (JSON: the reviewers' "
        "decision; where one edited the text, the run's original).",
        *review_lines(metas),
        "",
    ]
    return "\n".join(out)
