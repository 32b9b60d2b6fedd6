"""Baseline strategies (one-shot, best-of-n) and per-request seeds, through the real graph,
checkpointer and records against the FAKE stub server with the FAKE hash embedder: these tests
check plumbing (which calls are made, what is recorded, what a resume redoes), not quality.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from caredio.config.settings import LoopSettings
from caredio.errors import UserInputError
from caredio.graph.strategies import candidates, loop_calls
from caredio.run.runner import resume_run, start_run
from caredio.rundir.files import read_jsonl
from testing.jobs import stub_settings
from testing.stub_server import FaultPlan, StubOpenAIServer

CONTRAST = 2  # stub_settings contrasts each culture with the other two of Japan, China, South Korea


def _turns(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    by_sample: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for turn in read_jsonl(run_dir / "trace.jsonl"):
        by_sample[turn["sample_id"]].append(turn)
    return by_sample


def _versions(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    by_sample: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for version in read_jsonl(run_dir / "trajectories.jsonl"):
        by_sample[version["sample_id"]].append(version)
    return by_sample


def test_one_shot_is_question_answer_and_scoring_contrast_nothing_else(tmp_path: Path, fake_embedder: Any) -> None:
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path), rounds=3, strategy="one-shot")
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    assert record["status"] == "completed" and record["completed"] == 2
    assert record["strategy"] == "one-shot" and record["candidates"] == [1]
    for sample, turns in _turns(run_dir).items():
        steps = Counter((t["agent"], t["step"]) for t in turns)
        assert steps == {("culture_expert", "question"): 1, ("culture_expert", "answer"): 1,
                         ("contrast_critic", "contrast"): CONTRAST}, sample
    for line in read_jsonl(run_dir / "dataset.jsonl"):
        meta = line["metadata"]
        assert meta["strategy"] == "one-shot" and meta["versions"] == 1 and meta["rounds"] == 0
        [version] = _versions(run_dir)[meta["sample_id"]]
        assert (version["round"], version["step"]) == (0, "initial")
        assert line["messages"][-1]["content"] == version["response"]


def test_best_of_n_answers_one_question_n_times_with_distinct_seeds_and_keeps_the_best(
        tmp_path: Path, fake_embedder: Any) -> None:
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path), strategy="best-of-n", best_of_n=4,
                                 llm={"seed": 7})
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
        bodies = list(stub.requests)
    assert record["status"] == "completed" and record["strategy"] == "best-of-n"
    assert record["llm_seed"] == 7 and record["candidates"] == [4]
    versions = _versions(run_dir)
    for line in read_jsonl(run_dir / "dataset.jsonl"):
        meta = line["metadata"]
        mine = versions[meta["sample_id"]]
        assert [(v["round"], v["step"]) for v in mine] == [(0, "initial"), (1, "candidate"),
                                                           (2, "candidate"), (3, "candidate")]
        assert len({v["question"] for v in mine}) == 1  # the same question, answered 4 times
        best = max(mine, key=lambda v: (v["objective"], -v["round"]))
        assert (meta["best_round"], meta["objective"]) == (best["round"], best["objective"])
        assert line["messages"][-1]["content"] == best["response"]
        assert meta["strategy"] == "best-of-n" and meta["rounds"] == 0 and meta["versions"] == 4
        turns = Counter((t["agent"], t["step"]) for t in _turns(run_dir)[meta["sample_id"]])
        assert turns == {("culture_expert", "question"): 1, ("culture_expert", "answer"): 4,
                         ("contrast_critic", "contrast"): CONTRAST}
    # The same answer prompt was sent four times per sample, each time with another seed.
    answer_prompts: dict[str, list[int]] = defaultdict(list)
    for body in bodies:
        assert isinstance(body.get("seed"), int)
        if "Answer in 3 to 5 sentences" in json.dumps(body["messages"]):
            answer_prompts[json.dumps(body["messages"])].append(body["seed"])
    assert sorted(len(seeds) for seeds in answer_prompts.values()) == [4, 4]
    assert all(len(set(seeds)) == 4 for seeds in answer_prompts.values())


def test_an_unusable_candidate_is_skipped_not_the_sample_lost(tmp_path: Path, fake_embedder: Any) -> None:
    """One of best-of-n's answers stays unusable through its re-asks (the FAKE stub writes
    only questions for it): the sample keeps the other candidates instead of failing — a
    baseline that lost whole samples to one bad draw would not be compared fairly."""
    import random

    from testing.schema_example import example_from_schema
    from testing.stub_server import _prompt_schema

    answers = {"calls": 0}

    def respond(body: dict[str, Any]) -> str:
        schema = _prompt_schema(body["messages"]) or {"type": "object"}
        value = example_from_schema(schema, random.Random(json.dumps(body["messages"])))
        if schema.get("title") == "ExpertAnswer":
            answers["calls"] += 1
            if answers["calls"] in (2, 3, 4):  # candidate 1: its first try and both re-asks
                value = {"answer": "Do you bow to elders? Or do you shake hands?"}
        return json.dumps(value)

    with StubOpenAIServer(responder=respond) as stub:
        settings = stub_settings(stub.url, str(tmp_path), cultures=("Japan",), strategy="best-of-n",
                                 best_of_n=4, concurrency=1, llm={"structured_output": "prompt"})
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    assert record["status"] == "completed" and record["completed"] == 1 and record["failed"] == 0
    [line] = read_jsonl(run_dir / "dataset.jsonl")
    mine = _versions(run_dir)[line["metadata"]["sample_id"]]
    assert [v["round"] for v in mine] == [0, 2, 3]  # candidate 1 skipped, n = 4 draws made
    assert "?" not in line["messages"][1]["content"]
    [failed] = [t for t in read_jsonl(run_dir / "trace.jsonl") if t["error"]]
    assert (failed["round"], failed["step"]) == (1, "answer") and "asks questions" in failed["error"]


def test_no_seed_is_sent_unless_configured(tmp_path: Path, fake_embedder: Any) -> None:
    with StubOpenAIServer() as stub:
        start_run(stub_settings(stub.url, str(tmp_path), strategy="one-shot"),
                  lambda kind, data: None, embedder=fake_embedder)
        assert stub.requests and not any("seed" in body for body in stub.requests)


@pytest.mark.parametrize("first_step", ["response", "question"])
def test_the_rule_for_n_matches_the_calls_a_full_loop_sample_makes(
        tmp_path: Path, fake_embedder: Any, first_step: str) -> None:
    loop = LoopSettings(max_rounds=3, min_rounds=3, first_step=first_step)  # type: ignore[arg-type]
    expected = {"response": 14, "question": 17}[first_step]
    assert loop_calls(loop, CONTRAST) == expected
    n = candidates("best-of-n", None, loop, CONTRAST)
    assert n == expected - 1 - CONTRAST
    with StubOpenAIServer() as stub:
        run_dir, _ = start_run(
            stub_settings(stub.url, str(tmp_path), run_id="loop", rounds=3,
                          loop={"first_step": first_step}),
            lambda kind, data: None, embedder=fake_embedder)
        best_dir, _ = start_run(
            stub_settings(stub.url, str(tmp_path), run_id="bon", strategy="best-of-n", rounds=3,
                          loop={"first_step": first_step}),
            lambda kind, data: None, embedder=fake_embedder)
    # The loop graph makes exactly the calls the rule counts, and best-of-n spends the same.
    assert {s: len(t) for s, t in _turns(run_dir).items()} == dict.fromkeys(_turns(run_dir), expected)
    assert {s: len(t) for s, t in _turns(best_dir).items()} == dict.fromkeys(_turns(run_dir), expected)


def test_a_failed_best_of_n_sample_resumes_after_its_last_scored_candidate(
        tmp_path: Path, fake_embedder: Any) -> None:
    """The endpoint fails every call after the 9th; resume (another endpoint) finishes the run
    without redoing a scored candidate: every sample ends with exactly n versions, no duplicate,
    and (llm.seed) the resumed candidates get new seeds, not those of the first answers again."""
    failing = {"after": 9}

    def rule(body: dict[str, Any]) -> str | None:
        failing["after"] -= 1
        return "500" if failing["after"] < 0 else None

    n = 4
    settings = stub_settings("http://127.0.0.1:9/v1", str(tmp_path), strategy="best-of-n",
                             best_of_n=n, concurrency=1, llm={"max_retries": 0, "seed": 3},
                             max_failed_share=0.0)
    with StubOpenAIServer(faults=FaultPlan(rule=rule)) as stub:
        run_dir, record = start_run(settings.model_copy(update={"llm": settings.llm.model_copy(
            update={"base_url": stub.url})}), lambda kind, data: None, embedder=fake_embedder)
        answered = list(stub.requests[:9])  # the calls the stub answered before failing
    assert record["status"] == "failed" and record["failed"] >= 1
    scored_before = sum(len(v) for v in _versions(run_dir).values())
    assert 0 < scored_before < 2 * n
    with StubOpenAIServer() as healthy:
        record = resume_run(run_dir, lambda kind, data: None, embedder=fake_embedder,
                            base_url=healthy.url)
        resumed_answers = sum("Answer in 3 to 5 sentences" in json.dumps(b["messages"])
                              for b in healthy.requests)
        answered += healthy.requests
    seeds: dict[str, list[int]] = defaultdict(list)
    for body in answered:
        if "Answer in 3 to 5 sentences" in json.dumps(body["messages"]):
            seeds[json.dumps(body["messages"])].append(body["seed"])
    assert sorted(len(s) for s in seeds.values()) == [n, n]
    assert all(len(set(s)) == n for s in seeds.values()), seeds
    assert record["status"] == "completed" and record["completed"] == 2
    versions = _versions(run_dir)
    for sample, mine in versions.items():
        assert [v["round"] for v in mine] == list(range(n)), sample
    # Exactly the answers not yet scored were asked again: no scored candidate was redone.
    assert resumed_answers == 2 * n - scored_before
    ids = [line["metadata"]["sample_id"] for line in read_jsonl(run_dir / "dataset.jsonl")]
    assert sorted(ids) == sorted(versions)


def test_an_unknown_strategy_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="strategy"):
        stub_settings("http://127.0.0.1:9/v1", str(tmp_path), strategy="two-shot")
    assert not any(tmp_path.iterdir())


def test_the_cli_runs_a_baseline_and_refuses_bad_strategy_flags(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`caredio run --strategy best-of-n --best-of-n 2 --judge-split 0.3 --seed 5` in a real
    subprocess (FAKE embedder, FAKE stub server); bad values exit 2 with one line, no output."""
    import subprocess
    import sys

    from testing.cli import in_process_cli
    from testing.jobs import CLI_WITH_FAKE_EMBEDDER, fake_cli_env

    with StubOpenAIServer() as stub:
        proc = subprocess.run(
            [sys.executable, "-c", CLI_WITH_FAKE_EMBEDDER, "run", "--base-url", stub.url,
             "--model", "stub", "--cultures", "Japan", "--contrast", "China,South Korea",
             "--topics", "food_drink", "--memory", ":memory:", "--out", str(tmp_path / "runs"),
             "--run-id", "bon", "--strategy", "best-of-n", "--best-of-n", "2",
             "--judge-split", "0.3", "--seed", "5", "--quiet"],
            env=fake_cli_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert {body.get("seed") is not None for body in stub.requests} == {True}
    record = json.loads((tmp_path / "runs" / "bon" / "run.json").read_text())
    assert (record["strategy"], record["candidates"], record["llm_seed"]) == ("best-of-n", [2], 5)
    assert record["judge"]["split"] == 0.3
    [line] = read_jsonl(tmp_path / "runs" / "bon" / "dataset.jsonl")
    assert line["metadata"]["strategy"] == "best-of-n" and "judge_objective" in line["metadata"]

    cli = in_process_cli(monkeypatch, capsys)
    for flags, needle in ((["--strategy", "two-shot"], "strategy"),
                          (["--judge-split", "1.5"], "judge.split"),
                          (["--strategy", "best-of-n", "--best-of-n", "0"], "best_of_n")):
        code, _, err = cli("run", "--cultures", "Japan", "--out", str(tmp_path / "bad"), *flags)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, (flags, err)
        assert not (tmp_path / "bad").exists()
