"""``caredio prompts try``: a template on one recorded sample's inputs at one step.

A real run of the real graph (agents, scorer, checkpoints, records) against the FAKE stub
server with the FAKE hash embedder writes the run directory; ``prompts try`` then rebuilds the
inputs from its files, sends the (edited) template to the same stub and scores the reply with
the real scorer on the rebuilt memory. One test does the same on the real embedded llama.cpp
server (marked ``embedded``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from caredio.prompts import SPECS, packaged_text
from caredio.run.runner import start_run
from caredio.rundir.files import read_jsonl
from caredio.tools.prompt_try import try_template
from testing.cli import in_process_cli
from testing.jobs import HashEmbedder, stub_settings
from testing.stub_server import StubOpenAIServer

EDIT = "Name one concrete custom."
TRIED = [name for name in SPECS if name != "culture_expert_knowledge"]


@pytest.fixture(scope="module")
def stub() -> Any:
    # Text that never repeats: each turn's reply is its own, so a reply sent back can be told apart.
    with StubOpenAIServer(varied_text=True) as server:
        yield server


@pytest.fixture(scope="module")
def run(stub: StubOpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 samples x 2 rounds (a response step, then a question step), 2 related cultures each,
    with 2 samples of one culture and topic so that the second draft avoids the first's question."""
    out = tmp_path_factory.mktemp("try")
    settings = stub_settings(stub.url, str(out / "runs"), run_id="r", rounds=2, cultures=("Japan",),
                             samples_per_topic=2, concurrency=1, llm={"seed": 3})
    run_dir, record = start_run(settings, lambda kind, data: None, embedder=HashEmbedder())
    assert record["status"] == "completed"
    return run_dir


@pytest.fixture(scope="module")
def edited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prompts")
    for name in TRIED:
        text = packaged_text(name)
        (folder / f"{name}.txt").write_text(text.replace("[user]\n", f"[user]\n{EDIT}\n", 1))
    return folder


def _rounds(run_dir: Path, sample: str, template: str) -> list[int]:
    return sorted({t["round"] for t in read_jsonl(run_dir / "trace.jsonl")
                   if t["sample_id"] == sample and t["template"] == template})


@pytest.mark.parametrize("template", TRIED)
def test_every_steps_inputs_are_rebuilt_exactly_and_the_edited_template_is_sent(
        template: str, run: Path, edited: Path, stub: StubOpenAIServer) -> None:
    """For every template at every round the sample took its step in: the run's own template,
    rendered with the rebuilt inputs, is what the run sent; the edited one is what reaches the
    endpoint, with the run's seed for that turn."""
    for sample in ("japan-food_drink-000", "japan-food_drink-001"):
        for round_ in _rounds(run, sample, template):
            sent = len(stub.requests)
            tried = try_template(run, template, sample, round_, prompts_dir=edited,
                                 embedder=HashEmbedder())
            calls = 2 if template == "contrast_critic_contrast" else 1
            assert len(tried.outcomes) == calls and len(stub.requests) == sent + calls
            for outcome, body in zip(tried.outcomes, stub.requests[sent:], strict=True):
                assert outcome.call.exact, (template, sample, round_, outcome.call.difference)
                assert body["messages"][-1]["content"].startswith(EDIT)
                assert body["seed"] == _seed_of(run, outcome.call.run_turn)
                assert outcome.verdict == "accepted" and outcome.reply
            if template in ("culture_expert_answer", "refiner_response"):
                scores = tried.outcomes[0].scores
                assert scores is not None and 0.0 <= scores["objective"] <= 1.0
                assert tried.run_version is not None and tried.run_version["round"] == round_


def _seed_of(run: Path, turn: Any) -> int:
    """The seed the run sent with that turn's first request: the stub kept no record of it, so
    it is derived again the way the client derives it (llm.seed, role, turn, prompt)."""
    from caredio.config.settings import LLMSettings
    from caredio.llm.client import RoleLLM
    from caredio.llm.limits import RequestLimiter
    from caredio.llm.structured import MethodMemory

    llm = RoleLLM(turn["agent"], LLMSettings(seed=3), RequestLimiter(1), MethodMemory(), "http://x/v1", "m")
    tried_messages = json.loads(json.dumps(turn["messages"]))
    tried_messages[-1]["content"] = f"{EDIT}\n" + tried_messages[-1]["content"]
    options, _ = llm._request_options(tried_messages, f"{turn['sample_id']}#{turn['round']}")
    return int(options["seed"])


def test_the_checks_verdict_and_the_scores_are_shown_beside_the_runs(
        run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An endpoint whose answer names the culture: the reply parses, the sample's checks refuse
    it, and it is still scored (and the run's version shown beside it)."""
    import caredio.memory.embeddings as embeddings

    monkeypatch.setitem(embeddings._shared, embeddings.shared_key("minilm"), HashEmbedder())

    def naming(body: dict[str, Any], name: str, value: Any) -> Any:
        return {"response": "In Japan we bow deeply and bring a small wrapped gift."}

    cli = in_process_cli(monkeypatch, capsys)
    with StubOpenAIServer(structured=naming) as other:
        code, out, err = cli("prompts", "try", "refiner_response", "--run", str(run),
                             "--sample", "japan-food_drink-000", "--base-url", other.url)
    assert code == 0, err
    assert "inputs: exactly the run's" in out
    assert "reply (" in out and "In Japan we bow" in out
    assert "checks: refused: reply unusable: field 'response' names 'Japan'" in out
    assert "scores: R " in out and "(the run's version: R " in out
    assert "the run had: {\"response\":" in out
    assert "hash" in out and "unchanged" in out  # the packaged template, as the run had it


def test_json_holds_the_reply_the_verdict_and_what_the_run_had(
        run: Path, edited: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import caredio.memory.embeddings as embeddings

    monkeypatch.setitem(embeddings._shared, embeddings.shared_key("minilm"), HashEmbedder())
    cli = in_process_cli(monkeypatch, capsys)
    code, out, err = cli("prompts", "try", "contrast_critic_contrast", "--run", str(run), "--sample",
                         "japan-food_drink-001", "--prompts", str(edited), "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["template"] == "contrast_critic_contrast" and record["hash"] != record["run_hash"]
    assert [c["messages"][-1]["content"].startswith(EDIT) for c in record["calls"]] == [True, True]
    assert all(c["inputs_exact"] and c["verdict"] == "accepted" and c["reply"] and c["run_parsed"]
               for c in record["calls"])


@pytest.mark.parametrize(("args", "needle"), [
    (("refiner_response", "--sample", "nobody"), "--sample:"),
    (("refiner_response", "--sample", "japan-food_drink-000", "--round", "2"), "--round: sample"),
    (("no_such_template", "--sample", "japan-food_drink-000"), "unknown template 'no_such_template'"),
])
def test_bad_input_is_one_line_exit_2(run: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                                      needle: str) -> None:
    cli = in_process_cli(monkeypatch, capsys)
    code, _, err = cli("prompts", "try", args[0], "--run", str(run), *args[1:])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and needle in lines[0], err


@pytest.mark.embedded
def test_on_the_embedded_model_a_step_is_tried_in_seconds(demo_run: dict[str, Any], embedder: Any) -> None:
    """The demo run (real embedded llama.cpp server, real MiniLM, persistent memory): its
    refiner step, tried on the embedded server the run used, started for the one call."""
    run_dir = demo_run["run_dir"]
    turns = read_jsonl(run_dir / "trace.jsonl")
    turn = next(t for t in turns if t["template"] == "refiner_response" and not t["error"])
    tried = try_template(run_dir, "refiner_response", turn["sample_id"], turn["round"], embedder=embedder)
    (outcome,) = tried.outcomes
    assert outcome.call.exact, outcome.call.difference
    assert outcome.reply and outcome.verdict
    assert tried.endpoint.startswith("http://127.0.0.1:")
    if outcome.parsed is not None:
        assert outcome.scores is not None and 0.0 <= outcome.scores["objective"] <= 1.0
