"""Does the loop make better data? The three strategies under one plan, judged on held-out knowledge.

Runs ``loop``, ``best-of-n`` and ``one-shot`` (and, with ``--variants``, the loop's own choices:
refining from the best version, rejecting a refinement that loses R, the question step first)
on the same plan, model, memory and seed, each into its own run directory under ``--out``, then
prints the ``caredio compare`` table of them all with the verdicts.

Fairness, by construction:
* the same plan (cultures x topics x samples, the same contrast cultures) and settings for every
  strategy, except what the strategy is;
* every run starts from a fresh ephemeral memory holding the packaged starter pack, so no run
  sees the questions or samples another accepted;
* ``judge.split`` holds the same share of every culture's knowledge out of every run's
  grounding and scoring; the judge scores all of them on that part alone;
* best-of-n gets n answers so that its LLM calls per sample match the loop run's measured mean
  (n = mean calls of a loop sample - 1 question - the contrast answers);
* ``llm.seed`` makes every request's sampling seed a function of the seed, the role and the
  prompt, so a rerun repeats the calls (one-shot's draft is the loop's round-0 draft).

A run directory already completed under ``--out`` is kept, an unfinished one resumed: the
benchmark can be stopped and started again. Figures are printed, never asserted.

    python benchmarks/efficacy.py --out bench-efficacy              # embedded SmolLM2-135M
    python benchmarks/efficacy.py --out bench-efficacy --variants   # item 5: the loop's choices
    python benchmarks/efficacy.py --out bench-efficacy --compare-only --json
    python benchmarks/efficacy.py --base-url http://localhost:8000/v1 --model qwen2.5-7b ...
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

CULTURES = ("Japan", "South Korea")
CONTRAST = ("Japan", "South Korea", "China")
TOPICS = ("greetings_etiquette", "gift_giving", "food_drink", "dining_etiquette")
STRATEGIES = ("loop", "best-of-n", "one-shot")
# The loop's own choices (issue item 5), each one change from the default loop.
VARIANTS: dict[str, dict[str, Any]] = {
    "loop-from-best": {"refine_from": "best"},
    "loop-r-guard": {"max_r_drop": 0.05},
    "loop-question-first": {"first_step": "question"},
}
BENCH_RECORD = "efficacy.json"
Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_settings(args: argparse.Namespace, label: str, best_of_n: int | None = None) -> Any:
    """The settings of one run: everything shared, the strategy (or loop variant) its own."""
    from caredio.config.loading import load_settings

    loop: dict[str, Any] = {"max_rounds": args.max_rounds, **VARIANTS.get(label, {})}
    llm: dict[str, Any] = {"seed": args.seed, "temperature": args.temperature,
                           "max_tokens": args.max_tokens, "timeout": 600, "down_after": 900}
    if args.base_url:
        llm.update(base_url=args.base_url, model=args.model)
    return load_settings(
        cultures=list(args.cultures), contrast=list(args.contrast), topics=list(args.topics),
        samples_per_topic=args.samples, out=str(args.out), run_id=label,
        strategy=label if label in STRATEGIES else "loop", best_of_n=best_of_n,
        concurrency=args.concurrency, loop=loop, llm=llm,
        memory={"path": ":memory:", "elicit_missing": False},
        judge={"split": args.judge_split},
    )


def loop_calls_per_sample(run_dir: Path) -> float:
    """Mean LLM calls (turns, retries not counted) per kept sample of a finished run."""
    from caredio.rundir.files import read_jsonl

    kept = {line["metadata"]["sample_id"] for line in read_jsonl(run_dir / "dataset.jsonl")}
    turns = [t for t in read_jsonl(run_dir / "trace.jsonl") if t["sample_id"] in kept]
    return len(turns) / max(1, len(kept))


def matched_n(loop_dir: Path, contrast: int) -> int:
    """best-of-n's n: the loop's measured mean calls per sample, less question and contrast."""
    return max(2, round(loop_calls_per_sample(loop_dir)) - 1 - contrast)


def run_one(args: argparse.Namespace, label: str, best_of_n: int | None, embedder: Any,
            log: Log) -> dict[str, Any]:
    """Start, resume or keep one run; returns its benchmark record (CPU, load, wall)."""
    from caredio.run.runner import resume_run, start_run

    run_dir = Path(args.out) / label
    run_json = run_dir / "run.json"
    if run_json.exists() and json.loads(run_json.read_text())["status"] == "completed":
        log(f"{label}: completed earlier, kept ({run_dir})")
        return {}
    log(f"{label}: {'resuming' if run_json.exists() else 'starting'} "
        f"(best_of_n={best_of_n}) load average {os.getloadavg()[0]:.2f}")
    load_before = os.getloadavg()
    cpu_before = _cpu()
    started = time.perf_counter()
    on_event = _progress(label, log)
    if run_json.exists():
        record = resume_run(run_dir, on_event, embedder=embedder)
    else:
        _, record = start_run(run_settings(args, label, best_of_n), on_event, embedder=embedder)
    cpu = _cpu() - cpu_before
    result = {"label": label, "status": record["status"], "completed": record.get("completed"),
              "wall_s": round(time.perf_counter() - started, 1), "cpu_s": round(cpu, 1),
              "load_before": [round(x, 2) for x in load_before],
              "load_after": [round(x, 2) for x in os.getloadavg()]}
    log(f"{label}: {json.dumps(result)}")
    return result


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the embedded server)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _progress(label: str, log: Log) -> Callable[[str, dict[str, Any]], None]:
    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == "sample_done":
            log(f"{label}: {data['sample_id']} done, J {data['best']['objective']:.3f}")
        elif kind == "sample_failed":
            log(f"{label}: {data['sample_id']} FAILED {data['error']}")
    return on_event


def run_all(args: argparse.Namespace, embedder: Any = None, log: Log = _stderr) -> list[Path]:
    """The benchmark's runs (all, or those of ``--only``), in order; returns every run dir."""
    labels = all_labels(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / BENCH_RECORD
    unknown = sorted(set(args.only) - set(labels))
    if unknown:
        raise SystemExit(f"efficacy: --only: unknown run(s) {', '.join(unknown)} "
                         f"(known: {', '.join(labels)}; variants need --variants)")
    for label in args.only or labels:  # --only: in the order given
        best_of_n = None
        if label == "best-of-n":
            best_of_n = args.best_of_n or matched_n(out / "loop", len(args.contrast) - 1)
        result = run_one(args, label, best_of_n, embedder, log)
        if result:
            # Re-read: another benchmark process (--only) may have recorded its runs meanwhile.
            records = json.loads(record_path.read_text()) if record_path.exists() else {}
            records[label] = {**result, "best_of_n": best_of_n}
            record_path.write_text(json.dumps(records, indent=2) + "\n")
    # With --only, another process may be making the other runs: compare what exists.
    return [out / label for label in labels if (out / label / "dataset.jsonl").is_file()]


def all_labels(args: argparse.Namespace) -> list[str]:
    """The runs of the benchmark in order (the loop first: best-of-n's n comes from it)."""
    return ["loop", "best-of-n", "one-shot", *(VARIANTS if args.variants else [])]


def rejudge(run_dir: Path, dest: Path, split: float, embedder: Any = None) -> Path:
    """A copy of ``run_dir`` under ``dest`` whose judge scores (every version in
    ``trajectories.jsonl``, every kept sample in ``dataset.jsonl``) are this code's judge:
    default scoring settings, the starter pack, ``split``. Runs made by other code (a pilot
    before a scorer change) are then judged alike; a run of this code comes out unchanged.
    The loop's own scores are left as the run recorded them."""
    import shutil

    from caredio.config.settings import JudgeSettings, ScoringSettings
    from caredio.memory.embeddings import embedder_for
    from caredio.memory.ingest import starter_pack
    from caredio.memory.judge import Judge, judge_fields
    from caredio.memory.store import CulturalMemory
    from caredio.rundir.files import read_jsonl

    config = json.loads((run_dir / "config.json").read_text())
    memory = CulturalMemory.open(embedder or embedder_for(config["memory"]["embedding"]))
    try:
        memory.add_knowledge(starter_pack())
        judge = Judge(memory, JudgeSettings(split=split), ScoringSettings())
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("checkpoints.sqlite*"))
        for name, text_of in (("trajectories.jsonl", lambda r: (r["question"], r["response"])),
                              ("dataset.jsonl", lambda r: (r["messages"][-2]["content"],
                                                           r["messages"][-1]["content"]))):
            if not (run_dir / name).exists():
                continue
            out = []
            for row in read_jsonl(run_dir / name):
                meta = row if name == "trajectories.jsonl" else row["metadata"]
                question, response = text_of(row)
                meta.update(judge_fields(judge.score(question, response, meta["culture"],
                                                     meta["contrast"])))
                out.append(json.dumps(row, ensure_ascii=False))
            (dest / name).write_text("\n".join(out) + "\n" if out else "")
    finally:
        memory.close()
    return dest


def trajectory_analysis(run_dir: Path, margin: float = 0.05) -> dict[str, Any]:
    """What the judge says of the loop's own choices, read from one loop run's trajectories
    (every version is judged): the version kept vs the first and the last, and each refinement
    step's change of J on the loop's scorer against the change on the judge — overall, for
    steps that lost more than ``margin`` of R, and per step kind (alternation order)."""
    from caredio.config.settings import LoopSettings
    from caredio.graph.routing import base_version
    from caredio.rundir.files import read_jsonl
    from caredio.stats import bootstrap_mean

    loop = LoopSettings(**json.loads((run_dir / "config.json").read_text())["loop"])
    by_sample: dict[str, list[dict[str, Any]]] = {}
    for version in read_jsonl(run_dir / "trajectories.jsonl"):
        by_sample.setdefault(version["sample_id"], []).append(version)
    kept_vs: dict[str, list[float]] = {"kept - first": [], "kept - last": []}
    steps: list[dict[str, Any]] = []
    for versions in by_sample.values():
        versions.sort(key=lambda v: v["round"])
        if "judge_objective" not in versions[0]:
            return {}
        eligible = [v for v in versions if not v.get("rejected")]
        kept = max(enumerate(eligible), key=lambda pair: (pair[1]["objective"], -pair[0]))[1]
        kept_vs["kept - first"].append(kept["judge_objective"] - versions[0]["judge_objective"])
        kept_vs["kept - last"].append(kept["judge_objective"] - versions[-1]["judge_objective"])
        for index, after in enumerate(versions[1:], start=1):
            before = base_version(versions[:index], loop)  # what this refinement rewrote
            steps.append({"step": after["step"],
                          "loop": after["objective"] - before["objective"],
                          "judge": after["judge_objective"] - before["judge_objective"],
                          "r_drop": before["representativeness"] - after["representativeness"]})

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        signs = [(r["loop"] > 0) == (r["judge"] > 0) for r in rows if r["loop"] and r["judge"]]
        return {"steps": len(rows),
                "loop_dJ": bootstrap_mean([r["loop"] for r in rows]).to_dict(),
                "judge_dJ": bootstrap_mean([r["judge"] for r in rows]).to_dict(),
                "same_sign": round(sum(signs) / len(signs), 3) if signs else None}

    return {
        "run": run_dir.name,
        **{name: bootstrap_mean(values).to_dict() for name, values in kept_vs.items()},
        "all steps": summary(steps),
        f"steps losing more than {margin} of R": summary([r for r in steps if r["r_drop"] > margin]),
        "response steps": summary([r for r in steps if r["step"] == "response"]),
        "question steps": summary([r for r in steps if r["step"] == "question"]),
    }


def _analysis_lines(analysis: dict[str, Any]) -> list[str]:
    def show(est: dict[str, Any]) -> str:
        return (f"{est['mean']:+.3f} [{est['ci_low']:+.3f}, {est['ci_high']:+.3f}] (n={est['n']})"
                if est["n"] else "-")

    lines = [f"Judge J of the version the loop kept, paired per sample ({analysis['run']}): "
             f"kept - first {show(analysis['kept - first'])}, kept - last {show(analysis['kept - last'])}"]
    for name, row in analysis.items():
        if isinstance(row, dict) and "steps" in row:
            lines.append(f"{name}: {row['steps']} steps, mean change of J on the loop's scorer "
                         f"{show(row['loop_dJ'])}, on the judge {show(row['judge_dJ'])}; "
                         f"same direction {row['same_sign']}")
    return lines


def report(dirs: list[Path], as_json: bool, plot: Path | None) -> str:
    """The compare table (markdown) and its verdicts, and what the judge says of the loop's
    steps; or all of it as JSON."""
    from caredio.tools.compare import compare, markdown, write_plot
    from caredio.tools.compare_runs import RUNS

    comparison = compare(dirs, [RUNS])
    if plot is not None:
        write_plot(comparison, plot)
    analyses = [a for d in dirs if d.name.startswith("loop") and (a := trajectory_analysis(d))]
    if as_json:
        return json.dumps({**comparison.to_dict(), "loop_steps": analyses}, indent=2,
                          ensure_ascii=False)
    lines = [markdown(comparison), ""]
    for analysis in analyses:
        lines += _analysis_lines(analysis)
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench-efficacy"), help="parent of the run directories")
    p.add_argument("--cultures", type=lambda s: tuple(s.split(",")), default=CULTURES)
    p.add_argument("--contrast", type=lambda s: tuple(s.split(",")), default=CONTRAST)
    p.add_argument("--topics", type=lambda s: tuple(s.split(",")), default=TOPICS)
    p.add_argument("--samples", type=int, default=2, help="samples per culture and topic")
    p.add_argument("--max-rounds", type=int, default=3)
    p.add_argument("--judge-split", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0, help="llm.seed of every run")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--max-tokens", type=int, default=400)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--best-of-n", type=int, default=None, help="n (default: matched to the loop run)")
    p.add_argument("--variants", action="store_true", help="also the loop variants (item 5)")
    p.add_argument("--only", type=lambda s: tuple(s.split(",")), default=(),
                   help="run only these labels (e.g. two processes sharing --out; the loop's "
                        "n for best-of-n then needs --best-of-n or a finished loop run)")
    p.add_argument("--base-url", default=None, help="an endpoint instead of the embedded model")
    p.add_argument("--model", default=None)
    p.add_argument("--compare-only", action="store_true", help="only print the comparison")
    p.add_argument("--extra", action="append", default=[], metavar="DIR=LABEL",
                   help="--compare-only: also compare this run directory (made earlier, e.g. a pilot)")
    p.add_argument("--rejudge", action="store_true",
                   help="--compare-only: judge every compared run again with this code's judge "
                        "(copies under OUT/rejudged/), so runs made by other code are judged alike")
    p.add_argument("--json", action="store_true", help="the comparison as JSON")
    p.add_argument("--plot", type=Path, default=None, help="also write the PNG here")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.compare_only:
        named = {label: args.out / label for label in all_labels(args)}
        named.update({label: Path(path) for path, _, label in
                      (extra.rpartition("=") for extra in args.extra)})
        unknown = sorted(set(args.only) - set(named))
        if unknown:
            raise SystemExit(f"efficacy: --only: unknown run(s) {', '.join(unknown)}")
        dirs = [named[label] for label in (args.only or named) if named[label].exists()]
        # A run stopped before its first kept sample has nothing to compare (yet).
        empty = [d for d in dirs if not (d / "dataset.jsonl").is_file()
                 or not (d / "dataset.jsonl").read_text().strip()]
        for run_dir in empty:
            _stderr(f"{run_dir.name}: no kept sample yet, left out of the comparison")
        dirs = [d for d in dirs if d not in empty]
        if args.rejudge:
            labels = {path: label for label, path in named.items()}
            dirs = [rejudge(d, args.out / "rejudged" / labels[d], args.judge_split) for d in dirs]
    else:
        dirs = run_all(args)
    if len(dirs) < 2:
        # One variant made alone (another process makes the loop): nothing to set it beside yet.
        print(f"efficacy: {len(dirs)} run with kept samples, nothing to compare; set runs side by side "
              "with --compare-only --extra DIR=LABEL", flush=True)
        return
    print(report(dirs, args.json, args.plot), flush=True)


if __name__ == "__main__":
    main()
