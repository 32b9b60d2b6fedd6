"""`caredio compare` on run directories: judge and loop-scorer rows, cost per kept sample,
pairing by plan entry, fairness notes and the verdicts. The run directories are written by the
test (known numbers in, known figures out); the CLI is the real entry point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from caredio.tools.compare import compare, markdown
from caredio.tools.compare_runs import RUNS
from testing.cli import in_process_cli


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    return in_process_cli(monkeypatch, capsys)


def write_run(directory: Path, *, strategy: str, objective: float, judge: float | None,
              calls: int = 4, samples: int = 12, wall: float = 120.0, model: str = "m",
              temperature: float = 0.7, contrast_of: dict[int, list[str]] | None = None) -> str:
    """A run directory: `samples` Japan/Korea samples with J = objective + i/100 (judge likewise),
    `calls` trace turns of 10 + 5 tokens and 1 s each per sample."""
    directory.mkdir(parents=True)
    (directory / "run.json").write_text(json.dumps({
        "run_id": directory.name, "status": "completed", "strategy": strategy, "model": model,
        "wall_seconds": wall}))
    (directory / "config.json").write_text(json.dumps({
        "strategy": strategy, "llm": {"temperature": temperature, "seed": 0},
        "judge": {"split": 0.3 if judge is not None else 0.0, "embedding": None}}))
    plan, lines, turns = [], [], []
    for i in range(samples):
        culture = "Japan" if i % 2 else "South Korea"
        sample = f"s{i:02d}"
        contrast = (contrast_of or {}).get(i, ["China"])
        plan.append({"sample_id": sample, "run_id": directory.name, "culture": culture,
                     "topic": "t", "contrast": contrast, "index": i})
        meta = {"sample_id": sample, "culture": culture, "strategy": strategy,
                "objective": objective + i / 100, "representativeness": 0.5, "distinctiveness": 0.5}
        if judge is not None:
            meta.update(judge_objective=judge + i / 100, judge_representativeness=0.4,
                        judge_distinctiveness=0.6)
        lines.append({"messages": [{"role": "user", "content": "q"},
                                   {"role": "assistant", "content": "r"}], "metadata": meta})
        turns += [{"sample_id": sample, "agent": "culture_expert", "input_tokens": 10,
                   "output_tokens": 5, "latency_ms": 1000} for _ in range(calls)]
    turns.append({"sample_id": "_memory", "agent": "culture_expert", "input_tokens": 99,
                  "output_tokens": 1, "latency_ms": 1000})
    for name, rows in (("plan.jsonl", plan), ("dataset.jsonl", lines), ("trace.jsonl", turns)):
        (directory / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(directory)


def _rows(comparison: Any) -> dict[tuple[str, str], Any]:
    return {(row.metric, row.group): row for row in comparison.rows}


def test_judge_and_cost_rows_and_who_wins_on_the_judge(tmp_path: Path) -> None:
    loop = write_run(tmp_path / "loop", strategy="loop", objective=0.6, judge=0.50, calls=12)
    one = write_run(tmp_path / "one", strategy="one-shot", objective=0.4, judge=0.45, calls=4)
    comparison = compare([Path(loop), Path(one)], [RUNS])
    rows = _rows(comparison)
    assert [m for m, g in rows if g == "all"] == [
        "objective", "representativeness", "distinctiveness", "judge objective",
        "judge representativeness", "judge distinctiveness", "LLM calls", "tokens", "wall s"]
    judge_diff = rows[("judge objective", "all")].differences[0][0]
    assert judge_diff.n == 12 and judge_diff.mean == pytest.approx(-0.05)
    assert rows[("LLM calls", "all")].estimates[0].mean == 12
    assert rows[("tokens", "all")].estimates[1].mean == 60  # 4 calls x 15 tokens; _memory left out
    # Wall time is shared by LLM time among kept samples: the mean is wall / kept samples.
    assert rows[("wall s", "all")].estimates[0].mean == pytest.approx(120 / 12)
    verdicts = "\n".join(comparison.verdicts())
    assert "On the held-out judge, the highest mean J is loop" in verdicts
    assert "loop - one (one-shot): +0.050" in verdicts and "outside the 95% interval" in verdicts
    assert "Cost per kept sample: loop 12.0 calls, 180 tokens, 10.0 s; one (one-shot) 4.0 calls" in verdicts
    notes = [note for m in comparison.measured for note in m.notes]
    assert any("LLM calls outside kept samples" in note for note in notes)


def test_a_gain_only_the_loops_scorer_sees_is_called_overfitting(tmp_path: Path) -> None:
    base = write_run(tmp_path / "base", strategy="one-shot", objective=0.40, judge=0.50)
    loop = write_run(tmp_path / "loop", strategy="loop", objective=0.70, judge=0.50)
    verdicts = "\n".join(compare([Path(base), Path(loop)], [RUNS]).verdicts())
    assert "On the loop's own scorer, the highest mean J is loop" in verdicts
    assert ("loop beats base (one-shot) on the loop's scorer but not on the judge: a gain of "
            "the scorer") in verdicts
    assert "0 is inside the 95% interval: no difference shown" in verdicts  # the judge: equal


def test_only_samples_of_the_same_plan_entry_pair_and_differences_are_noted(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", strategy="loop", objective=0.5, judge=0.5)
    b = write_run(tmp_path / "b", strategy="best-of-n", objective=0.5, judge=0.6, model="other",
                  temperature=0.2, contrast_of={0: ["Taiwan"], 1: ["Taiwan"]})
    comparison = compare([Path(a), Path(b)], [RUNS])
    diff = _rows(comparison)[("judge objective", "all")].differences[0]
    assert (diff[0].n, diff[1], diff[2]) == (10, 2, 2)  # s00, s01 were other samples in b
    notes = "\n".join(comparison.measured[1].notes)
    assert "plan differs from a: 10 samples in common" in notes
    assert "model differs from a: 'other' vs 'm'" in notes
    assert "temperature differs from a: 0.2 vs 0.7" in notes
    assert not any("differs" in note for note in comparison.measured[0].notes)


def test_runs_without_a_judge_say_so(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", strategy="loop", objective=0.5, judge=None)
    b = write_run(tmp_path / "b", strategy="one-shot", objective=0.5, judge=None)
    comparison = compare([Path(a), Path(b)], [RUNS])
    assert ("judge objective", "all") not in _rows(comparison)
    assert "On the held-out judge: no scores (run with --judge-split" in "\n".join(comparison.verdicts())
    assert any("have no judge scores" in note for note in comparison.measured[0].notes)
    table = markdown(comparison)
    assert table.startswith("| metric | group | a | b | b - a |") and "**objective**" in table


def test_the_cli_prints_json_and_a_png(cli: Any, tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", strategy="loop", objective=0.5, judge=0.5)
    b = write_run(tmp_path / "b", strategy="one-shot", objective=0.4, judge=0.4)
    code, out, err = cli("compare", a, b, "--json", "--plot", str(tmp_path / "cmp.png"))
    assert code == 0, err
    result = json.loads(out)
    assert any("highest mean J is a" in line for line in result["verdicts"])
    rows = {(r["metric"], r["group"]): r for r in result["rows"]}
    assert rows[("judge objective", "Japan")]["values"]["b"]["n"] == 6
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    code, out, err = cli("compare", a, b)
    assert code == 0 and "On the held-out judge, the highest mean J is a (loop)" in out


def test_a_winner_by_means_over_different_samples_points_to_the_paired_difference(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", strategy="loop", objective=0.5, judge=0.5)
    b = write_run(tmp_path / "b", strategy="one-shot", objective=0.5, judge=0.5, samples=6)
    c = write_run(tmp_path / "c", strategy="best-of-n", objective=0.5, judge=0.5)
    uneven = compare([Path(a), Path(b)], [RUNS]).verdicts()
    assert any("kept different samples" in line for line in uneven)
    even = compare([Path(a), Path(c)], [RUNS]).verdicts()
    assert not any("kept different samples" in line for line in even)


def test_a_handful_of_pairs_gets_no_verdict(tmp_path: Path) -> None:
    # b is better by 0.1 on every one of 5 pairs: the bootstrap interval excludes 0, and still
    # 5 pairs are too few to call it a real difference (nor overfitting).
    a = write_run(tmp_path / "a", strategy="loop", objective=0.6, judge=0.5, samples=5)
    b = write_run(tmp_path / "b", strategy="one-shot", objective=0.5, judge=0.6, samples=5)
    verdicts = "\n".join(compare([Path(a), Path(b)], [RUNS]).verdicts())
    assert "over 5 paired samples; too few paired samples for a verdict" in verdicts
    assert "a real difference" not in verdicts and "overfitting" not in verdicts
    c = write_run(tmp_path / "c", strategy="loop", objective=0.6, judge=0.5, samples=8)
    d = write_run(tmp_path / "d", strategy="one-shot", objective=0.5, judge=0.6, samples=8)
    assert "over 8 paired samples; outside the 95% interval: a real difference" in \
        "\n".join(compare([Path(c), Path(d)], [RUNS]).verdicts())
