"""``caredio run --dry-run``: the plan and its expected calls, tokens and cost, checked against the
calls real runs made.

The real runs are the real graph (agents, scorer, checkpoints, records) against the FAKE stub
server, with the FAKE hash embedder; the dry run plans on the same (ephemeral) memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from caredio.run.estimate import dry_run
from caredio.run.runner import start_run
from testing.cli import in_process_cli
from testing.jobs import HashEmbedder, stub_settings, trace_totals
from testing.stub_server import StubOpenAIServer

PLAN = {"cultures": ("Japan", "China", "South Korea"), "topics": ("food_drink", "gift_giving")}


def _calls(run_dir: Path) -> tuple[int, int]:
    totals = trace_totals(run_dir)["tokens"]
    return (sum(t["calls"] for t in totals.values()),
            sum(t["input"] + t["output"] for t in totals.values()))


def test_without_earlier_runs_the_most_is_exactly_what_a_run_of_every_round_makes(
        tmp_path: Path, fake_embedder: Any) -> None:
    """The stub's answers never meet the thresholds and min_rounds = max_rounds: every sample
    runs all its rounds, alternating response and question steps (a question step asks new
    contrast answers), so the run makes exactly the most."""
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path / "runs"), run_id="real", rounds=3, **PLAN)
        estimate = dry_run(settings, embedder=fake_embedder, price_in=1.0)
        assert not (tmp_path / "runs").exists()  # nothing written
        assert stub.requests == []  # nothing called
        run_dir, _ = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    calls, _ = _calls(run_dir)
    assert estimate.calls.most == estimate.calls.typical == calls
    assert estimate.calls.least == estimate.calls.most  # min_rounds = max_rounds
    assert estimate.samples == {c: {"food_drink": 1, "gift_giving": 1} for c in PLAN["cultures"]}
    assert estimate.contrast["Japan"] == ["China", "South Korea"]
    assert estimate.input_tokens is None and estimate.cost is None  # no earlier run to learn from
    assert any("no cost" in note for note in estimate.notes)


@pytest.mark.slow  # over 5 s: out of the fast lane
def test_typical_from_an_earlier_run_is_within_a_quarter_of_what_the_next_run_makes(
        tmp_path: Path, fake_embedder: Any) -> None:
    """Samples that may stop early (a plateau of J after round 2, the stub's J being noise): the
    earlier run's share of its most predicts the next run's calls and tokens."""
    out = tmp_path / "runs"
    loop = {"min_rounds": 2, "patience": 1, "epsilon": 0.0}
    with StubOpenAIServer(varied_text=True) as stub:
        earlier = stub_settings(stub.url, str(out), run_id="earlier", rounds=4, loop=loop,
                                samples_per_topic=6, **PLAN)
        start_run(earlier, lambda kind, data: None, embedder=fake_embedder)
        settings = stub_settings(stub.url, str(out), run_id="next", rounds=4, loop=loop,
                                 samples_per_topic=6, **PLAN)
        estimate = dry_run(settings, embedder=fake_embedder, price_in=2.0, price_out=8.0)
        assert not (out / "next").exists()
        run_dir, _ = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    calls, tokens = _calls(run_dir)
    assert estimate.history == [str(out / "earlier")]
    assert estimate.calls.least <= calls <= estimate.calls.most
    assert estimate.calls.least < estimate.calls.typical < estimate.calls.most  # the loop stopped early
    assert abs(estimate.calls.typical - calls) <= 0.25 * calls
    assert estimate.input_tokens is not None and estimate.output_tokens is not None
    typical_tokens = estimate.input_tokens.typical + estimate.output_tokens.typical
    assert abs(typical_tokens - tokens) <= 0.25 * tokens
    assert estimate.cost is not None
    assert estimate.cost.typical == pytest.approx(
        estimate.input_tokens.typical * 2.0 / 1e6 + estimate.output_tokens.typical * 8.0 / 1e6, abs=1e-4)


def test_best_of_n_and_one_shot_calls_are_exact(tmp_path: Path, fake_embedder: Any) -> None:
    with StubOpenAIServer() as stub:
        for strategy, extra in (("best-of-n", {"best_of_n": 3}), ("one-shot", {})):
            settings = stub_settings(stub.url, str(tmp_path / strategy), run_id="r",
                                     strategy=strategy, **extra)
            estimate = dry_run(settings, embedder=fake_embedder)
            run_dir, _ = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
            assert estimate.calls.least == estimate.calls.most == _calls(run_dir)[0], strategy


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """The real CLI in process, with the FAKE hash embedder as the default backend's."""
    import caredio.memory.embeddings as embeddings

    monkeypatch.setitem(embeddings._shared, embeddings.shared_key("minilm"), HashEmbedder())
    return in_process_cli(monkeypatch, capsys)


def test_the_cli_prints_the_plan_and_notes_a_culture_it_would_elicit(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    code, stdout, err = cli("run", "--dry-run", "--memory", ":memory:", "--out", str(out),
                            "--cultures", "Japan,Kenya", "--topics", "food_drink,gift_giving",
                            "--price-in", "3", "--price-out", "15")
    assert code == 0, err
    assert "4 samples planned" in stdout and "Japan: food_drink 1, gift_giving 1" in stdout
    assert "Kenya: food_drink 1, gift_giving 1; contrast: chosen after its knowledge is elicited" in stdout
    assert "LLM calls (agent turns): least" in stdout
    # Two elicitation turns (Kenya x 2 topics) beside the loop's; no tokens without history.
    assert "knowledge of Kenya is not in memory" in stdout and "(2 calls, counted)" in stdout
    assert "no cost" in stdout
    assert not out.exists()


@pytest.mark.parametrize(("args", "needle"), [
    (("--cultures", ""), "--cultures: empty list"),
    (("--topics", "no_such_topic"), "no_such_topic"),
    (("--price-in", "-1"), "--price-in: a price per million tokens cannot be negative"),
])
def test_bad_input_is_reported_as_a_real_run_would(cli: Any, tmp_path: Path, args: tuple[str, ...],
                                                   needle: str) -> None:
    out = tmp_path / "runs"
    code, _, err = cli("run", "--dry-run", "--memory", ":memory:", "--out", str(out), *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and needle in lines[0], err
    assert not out.exists()
