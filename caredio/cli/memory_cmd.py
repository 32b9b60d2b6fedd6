"""``caredio memory ingest|stats`` and ``caredio score``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from caredio.cli import options

memory_app = typer.Typer(help="Ingest knowledge into a cultural memory and inspect it.", no_args_is_help=True,
                         rich_markup_mode="rich")

MEMORY_HELP = options.MEMORY_HELP + options.default(options.MEMORY_DEFAULT)
MEMORY_URL_HELP = options.MEMORY_URL_HELP + options.default("none")


def _settings(memory: str | None, memory_url: str | None) -> Any:
    from caredio.config.loading import load_settings
    from caredio.threads import configure_threads

    settings = load_settings(memory={"path": memory, "url": memory_url})
    configure_threads(settings.threads)
    return settings


def _open(memory: str | None, memory_url: str | None, starter: bool = False, settings: Any = None) -> Any:
    """The memory; with ``starter``, the starter pack loaded as ``caredio run`` loads it."""
    from caredio.run.job import load_starter_pack, open_memory

    settings = settings or _settings(memory, memory_url)
    store = open_memory(settings)
    if starter:
        load_starter_pack(settings, store)
    return store


@memory_app.command("ingest")
def ingest_command(
    files: list[Path] = typer.Argument(
        None, metavar="FILE...", help="Knowledge files: JSONL, CSV, or BLEnD country files such as South_Korea_data.json; several at once are fine."),
    fmt: str = typer.Option(None, "--format", metavar="FORMAT", help="jsonl, csv or blend." + options.default("from the file extension")),
    culture: str = typer.Option(None, "--culture", metavar="CULTURE", help="Culture of every item, instead of the file's field." + options.default("the file's field")),
    memory: str = typer.Option(None, "--memory", metavar="DIR", help=MEMORY_HELP),
    memory_url: str = typer.Option(None, "--memory-url", metavar="URL", help=MEMORY_URL_HELP),
    from_review: Path = typer.Option(None, "--from-review", metavar="RUN_DIR", help="Instead of files: the answers reviewers of this run edited or accepted (source human, weight 1.0), and its rejected answers for later runs' near-duplicate rule; into the run's own memory unless --memory or --memory-url is given." + options.default("none")),
) -> None:
    """Add knowledge items to memory; re-ingesting the same file adds nothing twice."""
    import time

    from caredio.cli.consoles import err_console
    from caredio.memory.ingest import read_knowledge
    from caredio.memory.items import claim_of

    if from_review is not None or not files:
        _ingest_review(files, from_review, memory, memory_url)
        return
    # Every file is read and validated before anything is written.
    batches = [(file, read_knowledge(file, fmt, culture)) for file in files]
    store = _open(memory, memory_url)
    for file, items in batches:
        started = time.monotonic()
        with err_console.status(f"embedding and storing {len(items)} items from {file}"):
            added = store.add_knowledge(items)
        seconds = time.monotonic() - started
        cultures = sorted({item.culture for item in items})
        rate = f" ({added / seconds:.0f} items/s)" if added and seconds > 0 else ""
        claimed = sum(1 for item in items if claim_of(item.text))
        split = f"; {claimed} as 'question — answer'" if claimed else ""
        print(f"{file}: {len(items)} items read, {added} new, {len(items) - added} already present; "
              f"cultures: {', '.join(cultures)}{split}{rate}")
        # A question kept whole is matched by its question, not its answer (docs/scorers.md).
        asking = sum(1 for item in items if "?" in item.text and not claim_of(item.text))
        if asking:
            err_console.print(f"note: {file}: {asking} item(s) hold a '?' but were not read as "
                              "'question — answer'; if they are, write them so (docs/scorers.md, "
                              "\"How knowledge should be written\")", markup=False, soft_wrap=True)


def _ingest_review(files: list[Path] | None, run_dir: Path | None, memory: str | None,
                   memory_url: str | None) -> None:
    """``memory ingest --from-review RUN_DIR`` (caredio/review/feedback.py)."""
    from caredio.config.settings import Settings
    from caredio.errors import UserInputError
    from caredio.review.feedback import ingest_review, review_feedback
    from caredio.run.job import open_memory
    from caredio.rundir.reader import open_run

    if run_dir is None:
        raise UserInputError("memory ingest: give knowledge FILE... or --from-review RUN_DIR")
    if files:
        raise UserInputError("memory ingest: give FILE... or --from-review, not both")
    feedback = review_feedback(run_dir)
    config = open_run(run_dir).config
    used = dict(config.get("memory") or {})
    if memory is not None or memory_url is not None:
        used.update(path=memory, url=memory_url)
    elif not used.get("url") and used.get("path") in (None, ":memory:"):
        raise UserInputError(f"--from-review: {run_dir} used an ephemeral memory; "
                             "name the memory to add to with --memory DIR or --memory-url URL")
    # The run's embedding settings: its items must land in the vector space it scored in.
    store = open_memory(Settings(**{**config, "memory": used}))
    added = ingest_review(feedback, store)
    print(f"{run_dir}: {len(feedback.items)} human knowledge items ({feedback.edited} edited, "
          f"{feedback.confirmed} confirmed), {added} new; {feedback.rejected} rejected answers "
          f"recorded against near-duplicates; memory {store.label}")


@memory_app.command("stats")
def stats_command(
    memory: str = typer.Option(None, "--memory", metavar="DIR", help=MEMORY_HELP),
    memory_url: str = typer.Option(None, "--memory-url", metavar="URL", help=MEMORY_URL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Items per culture, topics, weights and sources."""
    from caredio.cli.consoles import console

    stats = _open(memory, memory_url, starter=True).stats()
    if as_json:
        print(json.dumps(stats, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"{stats['memory']}: {stats['knowledge_items']} knowledge items, "
                        f"{stats['samples']} accepted samples ({stats['embedding_backend']})")
    for column in ("culture", "items", "topics", "mean weight", "sources"):
        table.add_column(column)
    for culture, row in stats["cultures"].items():
        sources = ", ".join(f"{k} {v}" for k, v in sorted(row["sources"].items()))
        table.add_row(culture, str(row["items"]), str(row["topics"]), f"{row['mean_weight']:.2f}", sources)
    console.print(table)


def read_samples(path: Path) -> list[dict[str, Any]]:
    """Generic sample lines ``{culture, question, response}`` or this project's dataset lines."""
    from caredio.conversation import question_response
    from caredio.errors import UserInputError
    from caredio.memory.items import canonical_culture

    samples = []
    question: Any
    response: Any
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        try:
            lines = list(enumerate(handle, start=1))
        except UnicodeDecodeError:
            raise UserInputError(f"{path}: not UTF-8 text") from None
    for number, line in lines:
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{where}: not valid JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise UserInputError(f"{where}: expected a JSON object")
        evidence: dict[str, Any] = {}
        if "messages" in record:
            meta = record.get("metadata") or {}
            messages = record["messages"]
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                raise UserInputError(f"{where}: field 'messages' must be a list of objects")
            if not isinstance(meta, dict):
                raise UserInputError(f"{where}: field 'metadata' must be an object")
            question, response = question_response(messages)
            culture, sample_id = meta.get("culture"), meta.get("sample_id")
        else:
            question, response = record.get("question") or "", record.get("response")
            culture, sample_id = record.get("culture"), record.get("id")
            if "contrast_answers" in record:  # a trajectory line: the loop's own evidence
                sample_id = f"{record.get('sample_id')}@{record.get('round')}"
                evidence = _loop_evidence(record, where)
        if not isinstance(culture, str) or not culture:
            raise UserInputError(f"{where}: field 'culture' is missing")
        if not isinstance(response, str):
            raise UserInputError(f"{where}: field 'response' is missing or not text")
        samples.append({"id": sample_id or f"line-{number}", "culture": canonical_culture(culture),
                        "question": question or "", "response": response, "evidence": evidence,
                        "sample_id": sample_id})
    if not samples:
        raise UserInputError(f"{path}: no samples in the file")
    return samples


def _loop_evidence(record: dict[str, Any], where: str) -> dict[str, Any]:
    """What the loop scored a version with: its contrast cultures and answers, and the items
    its agents were shown (held out of the scoring)."""
    from caredio.errors import UserInputError
    from caredio.memory.items import canonical_culture

    answers = record.get("contrast_answers")
    if not isinstance(answers, dict) or not all(isinstance(v, str) for v in answers.values()):
        raise UserInputError(f"{where}: field 'contrast_answers' must be an object of texts")
    grounding = record.get("grounding_ids") or []
    if not isinstance(grounding, list):
        raise UserInputError(f"{where}: field 'grounding_ids' must be a list")
    contrast = record.get("contrast") or list(answers)
    return {"contrast": [canonical_culture(str(c)) for c in contrast],
            "contrast_answers": {canonical_culture(k): v for k, v in answers.items()},
            "exclude_ids": [str(i) for i in grounding]}


def run_evidence(run_dir: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The loop's evidence for every version of a run, by (sample id, question, response)."""
    from caredio.errors import UserInputError
    from caredio.rundir.files import read_jsonl
    from caredio.rundir.formats import TRAJECTORIES

    path = run_dir / TRAJECTORIES
    if not path.is_file():
        raise UserInputError(f"--run {run_dir}: no {TRAJECTORIES} (not a run directory)")
    found = {}
    for number, record in enumerate(read_jsonl(path), start=1):
        if "contrast_answers" in record:
            key = (str(record.get("sample_id")), record.get("question") or "", record.get("response") or "")
            found[key] = _loop_evidence(record, f"{path}:{number}")
    return found


def register(cli: typer.Typer) -> None:
    cli.add_typer(memory_app, name="memory")

    @cli.command("score")
    def score_command(
        file: Path = typer.Argument(..., metavar="FILE", help="Samples: JSONL of {culture, question, response}, dataset lines, or a run's trajectories.jsonl."),
        memory: str = typer.Option(None, "--memory", metavar="DIR", help=MEMORY_HELP),
        memory_url: str = typer.Option(None, "--memory-url", metavar="URL", help=MEMORY_URL_HELP),
        contrast: str = typer.Option("auto", "--contrast", metavar="MODE", help="'all', 'auto' (nearest cultures) or C1,C2."),
        run_dir: Path = typer.Option(None, "--run", metavar="RUN_DIR", help="Score dataset lines with the evidence the loop used in this run directory." + options.default("none")),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per sample on stdout, input order."),
        explain: bool = typer.Option(False, "--explain", help="Show each sentence's evidence: its label (supported, shared, unsupported, off-topic, repeated, copied), the share of R and D it carried, and the items behind it; with --json, an 'evidence' list per sample, item texts included."),
    ) -> None:
        """Score any dataset for representativeness and distinctiveness with the loop's scorer.

        The loop scores a version with more evidence than memory: the contrast critic's answers
        of the related cultures to the same question (a sentence they would also say is not
        distinctive) and, held out, the knowledge items its agents were shown. Without that
        evidence D differs from the run's; scoring a run's trajectories.jsonl, or dataset lines
        with --run RUN_DIR, uses it and reproduces the run's scores.
        """
        from caredio.cli.consoles import console, err_console
        from caredio.memory.items import canonical_culture
        from caredio.memory.scoring import Scorer

        samples = read_samples(file)
        loop_evidence = run_evidence(run_dir) if run_dir else {}
        for sample in samples:
            key = (str(sample["sample_id"]), sample["question"], sample["response"])
            if not sample["evidence"] and key in loop_evidence:
                sample["evidence"] = loop_evidence[key]
        settings = _settings(memory, memory_url)
        store = _open(memory, memory_url, starter=True, settings=settings)
        scorer = Scorer(store, settings.scoring)  # the loop's scorer, with the configured knobs
        mode: Any = contrast if contrast in ("all", "auto") else [
            canonical_culture(c.strip()) for c in contrast.split(",") if c.strip()]
        if mode == []:
            from caredio.errors import UserInputError

            raise UserInputError(f"--contrast: no culture in {contrast!r}")
        rows = []
        for sample in samples:  # validate every culture before printing anything
            chosen = sample["evidence"].get("contrast") or scorer.contrast_set(sample["culture"], mode)
            sample["contrast"] = scorer.contrast_set(sample["culture"], chosen)
        with err_console.status(f"scoring {len(samples)} samples"):
            scorer.warm([s["response"] for s in samples] + [s["question"] for s in samples if s["question"]])
            for sample in samples:
                evidence = sample["evidence"]
                result = scorer.score(sample["question"], sample["response"], sample["culture"],
                                      sample["contrast"], evidence.get("contrast_answers"),
                                      evidence.get("exclude_ids"))
                row = {"id": sample["id"], **result.to_dict(), "loop_evidence": bool(evidence)}
                if explain:
                    row["evidence"] = result.evidence
                    row["response"] = sample["response"]
                rows.append(row)
        blank = sum("blank" in row["flags"] for row in rows)
        if blank:
            err_console.print(f"{blank} sample(s) with a blank response scored 0 (flag 'blank')")
        texts = _item_texts(store, rows) if explain else {}
        if as_json:
            for row in rows:
                if explain:  # resolved for a reader of the JSON: the texts beside the ids
                    row.pop("response")
                    row["evidence"] = [{**entry, "support": [[i, s, texts.get(i, ("", ""))[1]] for i, s in entry["support"]],
                                        **({"rival": [*entry["rival"], texts.get(entry["rival"][1], ("", ""))[1]]}
                                           if entry.get("rival") else {})} for entry in row["evidence"]]
                sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
            return
        table = Table(title=f"{file}: {len(rows)} samples")
        for column in ("id", "culture", "R", "D", "J", "predicted", "flags"):
            table.add_column(column)
        for row in rows:
            table.add_row(str(row["id"]), row["culture"], f"{row['representativeness']:.3f}",
                          f"{row['distinctiveness']:.3f}", f"{row['objective']:.3f}", row["predicted_culture"],
                          ", ".join(row["flags"]))
        console.print(table)
        if explain:
            from caredio.cli.evidence_view import evidence_lines, legend

            for row in rows:
                console.rule(f"{row['id']} · {row['culture']} · R {row['representativeness']:.3f} D "
                             f"{row['distinctiveness']:.3f}")
                for line in evidence_lines(row["evidence"], row["response"], texts):
                    console.print(line)
            console.print(legend())
        means = Table(title="Per culture means")
        for column in ("culture", "samples", "R", "D", "J", "attributed correctly"):
            means.add_column(column)
        for culture in sorted({r["culture"] for r in rows}):
            group = [r for r in rows if r["culture"] == culture]
            def avg(key: str, group: list[dict[str, Any]] = group) -> str:
                return f"{sum(r[key] for r in group) / len(group):.3f}"
            correct = sum(r["predicted_culture"] == culture for r in group)
            means.add_row(culture, str(len(group)), avg("representativeness"), avg("distinctiveness"),
                          avg("objective"), f"{correct}/{len(group)}")
        console.print(means)


def _item_texts(store: Any, rows: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Item id -> (culture, text) for the items the rows' evidence names, from the memory that
    scored them (already open here)."""
    from caredio.cli.evidence_view import evidence_ids

    wanted = set(evidence_ids(entry for row in rows for entry in row["evidence"]))
    return {item_id: (culture, matrix.texts[i]) for culture, matrix in store.matrices().items()
            for i, item_id in enumerate(matrix.ids) if item_id in wanted}
