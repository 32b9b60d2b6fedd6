"""benchmarks/efficacy.py end to end against the FAKE stub server and the FAKE hash embedder.

This checks the benchmark's plumbing — every strategy and loop variant runs on one plan, best-of-n
gets the loop's measured calls, every run is judged, the compare table and verdicts come out,
a finished benchmark resumes without a call — and nothing about quality: the stub's answers are
filler, so the figures it prints mean nothing. The measured figures are in docs/efficacy.md.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchmarks import efficacy
from caredio.rundir.files import read_jsonl
from testing.stub_server import StubOpenAIServer

TOPICS = "food_drink,greetings_etiquette"


@pytest.mark.slow  # over 5 s: out of the fast lane
def test_the_benchmark_runs_every_strategy_on_one_plan_and_prints_the_comparison(
        tmp_path: Path, fake_embedder: Any) -> None:
    out = tmp_path / "bench"
    with StubOpenAIServer() as stub:
        args = efficacy.parser().parse_args([
            "--out", str(out), "--samples", "1", "--topics", TOPICS, "--max-rounds", "2",
            "--variants", "--base-url", stub.url, "--model", "stub"])
        logged: list[str] = []
        dirs = efficacy.run_all(args, embedder=fake_embedder, log=logged.append)
        calls = len(stub.requests)
        # Run again: every run is complete, nothing is asked of the model.
        efficacy.run_all(args, embedder=fake_embedder, log=logged.append)
        assert len(stub.requests) == calls
    labels = ["loop", "best-of-n", "one-shot", *efficacy.VARIANTS]
    assert [d.name for d in dirs] == labels
    plans = {d.name: [{k: v for k, v in spec.items() if k != "run_id"}
                      for spec in read_jsonl(d / "plan.jsonl")] for d in dirs}
    assert all(plan == plans["loop"] for plan in plans.values()) and len(plans["loop"]) == 4
    for d in dirs:
        record = json.loads((d / "run.json").read_text())
        assert record["status"] == "completed" and record["judge"]["split"] == 0.3
        assert record["llm_seed"] == 0
        assert all("judge_objective" in line["metadata"] for line in read_jsonl(d / "dataset.jsonl"))
    config = json.loads((out / "loop-r-guard" / "config.json").read_text())
    assert config["loop"]["max_r_drop"] == 0.05 and config["strategy"] == "loop"
    # best-of-n's n comes from the loop's measured calls per sample (contrast: 2 cultures).
    bench = json.loads((out / efficacy.BENCH_RECORD).read_text())
    n = bench["best-of-n"]["best_of_n"]
    assert n == round(efficacy.loop_calls_per_sample(out / "loop")) - 1 - 2
    per_sample = Counter(t["sample_id"] for t in read_jsonl(out / "best-of-n" / "trace.jsonl"))
    assert set(per_sample.values()) == {1 + n + 2}
    assert bench["loop"]["cpu_s"] >= 0 and len(bench["loop"]["load_before"]) == 3

    text = efficacy.report(dirs, as_json=False, plot=tmp_path / "efficacy.png")
    header = text.splitlines()[0]
    assert all(f" {label} |" in header for label in labels)
    assert "| **judge objective** | **all** |" in text
    assert "On the held-out judge, the highest mean J is" in text
    assert "Cost per kept sample: loop" in text
    assert (tmp_path / "efficacy.png").read_bytes()[:4] == b"\x89PNG"
    assert "Judge J of the version the loop kept, paired per sample (loop): kept - first" in text
    result = json.loads(efficacy.report(dirs, as_json=True, plot=None))
    # Every refinement step of every loop run is analysed once: versions minus first drafts.
    steps = {a["run"]: a["all steps"]["steps"] for a in result["loop_steps"]}
    for label in ("loop", *efficacy.VARIANTS):
        versions = read_jsonl(out / label / "trajectories.jsonl")
        assert steps[label] == len(versions) - 4
    assert "best-of-n" not in steps and "one-shot" not in steps
    judge_rows = [r for r in result["rows"] if r["metric"] == "judge objective" and r["group"] == "all"]
    assert [d["n"] for d in judge_rows[0]["differences"]] == [4] * (len(labels) - 1)  # all paired

    # Judging a run of this code again gives its own judge scores; a run judged otherwise
    # (here: scores overwritten, as by an older scorer) gets this code's.
    again = efficacy.rejudge(out / "loop", tmp_path / "rejudged" / "loop", 0.3, embedder=fake_embedder)
    keys = ("judge_objective", "judge_representativeness", "judge_distinctiveness")
    for name in ("dataset.jsonl", "trajectories.jsonl"):
        def judged(path: Path) -> list[tuple[float, ...]]:
            return [tuple((row.get("metadata") or row)[k] for k in keys) for row in read_jsonl(path)]
        assert judged(again / name) == judged(out / "loop" / name) and judged(again / name)
    stale = tmp_path / "stale"
    shutil.copytree(out / "loop", stale)
    lines = read_jsonl(stale / "dataset.jsonl")
    for line in lines:
        line["metadata"]["judge_objective"] = -1.0
    (stale / "dataset.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    fixed = efficacy.rejudge(stale, tmp_path / "rejudged" / "stale", 0.3, embedder=fake_embedder)
    def kept_judge(path: Path) -> list[float]:
        return [row["metadata"]["judge_objective"] for row in read_jsonl(path / "dataset.jsonl")]
    assert kept_judge(fixed) == kept_judge(out / "loop") and -1.0 in kept_judge(stale)


def test_only_runs_the_named_runs_in_the_order_given_and_refuses_unknown_ones(
        tmp_path: Path, fake_embedder: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # FAKE stub server: checks which runs are made, not their quality.
    out = tmp_path / "bench"
    base = ["--out", str(out), "--samples", "1", "--topics", "food_drink", "--max-rounds", "1"]
    with StubOpenAIServer() as stub:
        base += ["--base-url", stub.url, "--model", "stub"]
        with pytest.raises(SystemExit, match=r"unknown run.*loop-r-guard"):
            efficacy.run_all(efficacy.parser().parse_args([*base, "--only", "loop-r-guard"]),
                             embedder=fake_embedder, log=lambda _: None)
        logged: list[str] = []
        args = efficacy.parser().parse_args([*base, "--only", "one-shot,best-of-n", "--best-of-n", "3"])
        made = efficacy.run_all(args, embedder=fake_embedder, log=logged.append)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["best-of-n", "one-shot"]
    # The comparison after an --only run takes what exists (the loop is another process's).
    assert [d.name for d in made] == ["best-of-n", "one-shot"]
    assert "one-shot" in efficacy.report(made, as_json=False, plot=None)
    # One run alone (the others another process's): no comparison, no crash.
    efficacy.main(["--compare-only", "--out", str(out), "--only", "one-shot"])
    assert "nothing to compare" in capsys.readouterr().out
    starts = [line.split(":")[0] for line in logged if "starting" in line]
    assert starts == ["one-shot", "best-of-n"]
    bench = json.loads((out / efficacy.BENCH_RECORD).read_text())
    assert set(bench) == {"one-shot", "best-of-n"} and bench["best-of-n"]["best_of_n"] == 3
