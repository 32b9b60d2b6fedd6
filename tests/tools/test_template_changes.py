"""``caredio compare RUN_A RUN_B`` names the templates that differ, diffs them, and scores the
edited step's outputs against the earlier run's, paired by sample.

Real runs of the real graph (agents, scorer, checkpoints, records) against the FAKE stub server
with the FAKE hash embedder; compare runs through the real CLI entry point, in process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caredio.prompts import load_templates, packaged_text
from caredio.run.runner import start_run
from caredio.rundir.files import read_jsonl
from caredio.stats import paired_difference
from caredio.tools.compare import compare
from caredio.tools.compare_runs import RUNS
from testing.cli import in_process_cli
from testing.jobs import stub_settings
from testing.stub_server import StubOpenAIServer

EDIT = "Keep every sentence concrete."


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """first: packaged templates; edited: refiner_response.txt changed; same: packaged again."""
    from testing.jobs import HashEmbedder

    base = tmp_path_factory.mktemp("compare")
    prompts = base / "prompts"
    prompts.mkdir()
    text = packaged_text("refiner_response")
    (prompts / "refiner_response.txt").write_text(text.replace("[user]\n", f"[user]\n{EDIT}\n", 1))
    found = {}
    with StubOpenAIServer(varied_text=True) as stub:
        for name, extra in (("first", {}), ("edited", {"prompts_dir": str(prompts)}), ("same", {})):
            settings = stub_settings(stub.url, str(base / "runs"), run_id=name, rounds=2, **extra)
            found[name], record = start_run(settings, lambda kind, data: None, embedder=HashEmbedder())
            assert record["status"] == "completed"
    return found


def _response_j(run_dir: Path) -> dict[str, float]:
    return {v["sample_id"]: v["objective"] for v in read_jsonl(run_dir / "trajectories.jsonl")
            if v["step"] == "response"}


def test_the_edited_template_is_named_and_its_steps_scored_pair_by_pair(runs: dict[str, Path]) -> None:
    comparison = compare([runs["first"], runs["edited"]], [RUNS])
    old = load_templates()["refiner_response"].hash
    new = load_templates(runs["edited"] / "prompts")["refiner_response"].hash
    edited = comparison.measured[1]
    assert "templates differ from first: refiner_response" in edited.notes
    verdicts = comparison.verdicts()
    assert f"Templates that differ between first and edited: refiner_response ({old} -> {new})" in verdicts
    (row,) = [r for r in comparison.rows if r.metric == "J of refiner response steps"]
    a, b = _response_j(runs["first"]), _response_j(runs["edited"])
    expected, _, _ = paired_difference(a, b)
    assert row.differences[0][0].n == 2 and row.differences[0][0].mean == pytest.approx(expected.mean)
    assert [e.mean for e in row.estimates] == pytest.approx(
        [sum(a.values()) / 2, sum(b.values()) / 2])
    line = next(v for v in verdicts if v.strip().startswith("J of refiner response steps:"))
    assert f"edited - first {expected.mean:+.3f}" in line and "over 2 paired samples" in line
    # Only the edited step gets a row.
    assert not [r for r in comparison.rows if r.metric.startswith("J of ") and "refiner response" not in r.metric]


def test_runs_with_the_same_templates_get_no_template_lines(runs: dict[str, Path]) -> None:
    comparison = compare([runs["first"], runs["same"]], [RUNS])
    assert not any("emplates" in line for line in comparison.verdicts())
    assert not any(r.metric.startswith("J of ") for r in comparison.rows)


def test_the_cli_diffs_the_snapshots_with_diff(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cli = in_process_cli(monkeypatch, capsys)
    code, out, err = cli("compare", str(runs["first"]), str(runs["edited"]), "--diff")
    assert code == 0, err
    assert "J of refiner response steps" in out and "Templates that differ" in out
    assert "# template diff: first -> edited: refiner_response" in out
    assert f"+{EDIT}" in out and "prompts/refiner_response.txt" in out
    code, out, _ = cli("compare", str(runs["first"]), str(runs["edited"]), "--json", "--diff")
    record = json.loads(out)
    assert f"+{EDIT}" in record["template_diffs"]["first -> edited: refiner_response"]
    code, out, _ = cli("compare", str(runs["first"]), str(runs["edited"]))
    assert "# template diff" not in out


def test_diff_on_eval_directories_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval.json").write_text("{}")
    cli = in_process_cli(monkeypatch, capsys)
    code, _, err = cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--diff")
    assert code == 2 and "--diff" in err, err
