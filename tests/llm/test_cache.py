"""The response cache (caredio/llm/cache.py): a rerun pays only for the calls whose inputs changed.

Real parts throughout: a real SQLite file, the real graph (agents, scorer, checkpoints, records)
against the FAKE stub server (its replies are filler, and differ per request number, so a reply
served again can only have come from the cache), the FAKE hash embedder for the scorer.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from caredio.agents.checks import answer_rules
from caredio.agents.culture_expert import ExpertAnswer
from caredio.config.settings import LLMSettings
from caredio.errors import EndpointError, UserInputError
from caredio.llm.cache import ResponseCache
from caredio.llm.client import CallResult, RoleLLM
from caredio.llm.limits import RequestLimiter
from caredio.llm.structured import MethodMemory
from caredio.prompts import packaged_text
from caredio.run.runner import start_run
from caredio.rundir.files import read_jsonl
from testing.cli import in_process_cli
from testing.jobs import HashEmbedder, stub_settings
from testing.stub_server import FaultPlan, StubOpenAIServer


def _run(stub: StubOpenAIServer, out: Path, run_id: str, cache: Path, embedder: Any,
         **extra: Any) -> tuple[Path, dict[str, Any]]:
    """A 2-sample, 2-round job (response step, then question step) with the cache, seed 7."""
    llm = {"cache": str(cache), "seed": 7, **extra.pop("llm", {})}
    settings = stub_settings(stub.url, str(out), run_id=run_id, rounds=2, llm=llm, **extra)
    run_dir, record = start_run(settings, lambda kind, data: None, embedder=embedder)
    assert record["status"] == "completed", record
    return run_dir, record


def _turns(run_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(run_dir / "trace.jsonl")


def _inputs(turn: dict[str, Any]) -> str:
    """What determines a turn's requests besides the settings: where it is, and its prompt."""
    return json.dumps([turn["sample_id"], turn["round"], turn["template"], turn["messages"]])


def _samples(run_dir: Path) -> list[Any]:
    """The dataset, run id aside, in sample order (lines are written as samples finish)."""
    lines = [{**line, "metadata": {k: v for k, v in line["metadata"].items() if k != "run_id"}}
             for line in read_jsonl(run_dir / "dataset.jsonl")]
    return sorted(lines, key=lambda line: line["metadata"]["sample_id"])


def test_a_rerun_sends_nothing_and_reproduces_the_first_runs_replies(
        tmp_path: Path, fake_embedder: Any) -> None:
    cache = tmp_path / "cache.sqlite"
    with StubOpenAIServer() as stub:
        first, first_record = _run(stub, tmp_path / "runs", "first", cache, fake_embedder)
        sent = len(stub.requests)
        second, record = _run(stub, tmp_path / "runs", "second", cache, fake_embedder)
        assert len(stub.requests) == sent  # the rerun asked the endpoint nothing
    turns = _turns(second)
    assert turns and all(t["cached"] for t in turns)
    assert all(t["latency_ms"] == 0 and t["input_tokens"] == 0 == t["output_tokens"] for t in turns)
    # The same replies, so the same versions and dataset (scores included).
    assert _samples(second) == _samples(first)
    assert sorted(_inputs(t) + json.dumps(t["parsed"]) for t in turns) == sorted(
        _inputs(t) + json.dumps(t["parsed"]) for t in _turns(first))
    # run.json: hits = what the first run sent, tokens saved = what it spent, counted apart.
    spent_in = sum(t["input"] for t in first_record["tokens"].values())
    spent_out = sum(t["output"] for t in first_record["tokens"].values())
    assert first_record["cache"] == {"file": str(cache), "hits": 0, "misses": sent,
                                     "saved_input_tokens": 0, "saved_output_tokens": 0}
    assert record["cache"] == {"file": str(cache), "hits": sent, "misses": 0,
                               "saved_input_tokens": spent_in, "saved_output_tokens": spent_out}
    assert all(t["input"] == 0 == t["output"] for t in record["tokens"].values())


@pytest.mark.parametrize("edited", ["refiner_response", "culture_expert_question"])
def test_after_a_template_edit_exactly_the_turns_with_new_inputs_are_sent(
        tmp_path: Path, fake_embedder: Any, edited: str) -> None:
    """An edit to the refiner's response template: the draft, its contrast answers and first
    critique come from the cache, the rewrite and everything it feeds are asked again. An edit
    upstream of everything (the question template): every turn is asked again."""
    cache = tmp_path / "cache.sqlite"
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    text = packaged_text(edited)
    (prompts / f"{edited}.txt").write_text(text.replace("[user]\n", "[user]\nBe concrete.\n", 1))
    # Text that never repeats: the stub's default questions are drawn from few words, and two
    # samples asking the same question would share hits by right (identical inputs).
    with StubOpenAIServer(varied_text=True) as stub:
        first, _ = _run(stub, tmp_path / "runs", "first", cache, fake_embedder)
        sent = len(stub.requests)
        second, record = _run(stub, tmp_path / "runs", "second", cache, fake_embedder,
                              prompts_dir=str(prompts))
        resent = len(stub.requests) - sent
    before = {_inputs(t) for t in _turns(first)}
    turns = _turns(second)
    assert [t["cached"] for t in turns] == [_inputs(t) in before for t in turns]
    hits = [t for t in turns if t["cached"]]
    assert record["cache"]["misses"] == resent == len(turns) - len(hits)
    if edited == "culture_expert_question":
        assert hits == []
    else:
        # Per sample: round 0 (question, answer, 2 contrast answers, critique) from the cache.
        assert {(t["sample_id"], t["round"], t["template"]) for t in hits} == {
            (sample, 0, name) for sample in ("japan-food_drink-000", "china-food_drink-000")
            for name in ("culture_expert_question", "culture_expert_answer",
                         "contrast_critic_contrast", "contrast_critic_critique")}
        assert all(t["template"] != edited for t in hits)


def test_best_of_n_candidates_stay_distinct_without_a_seed(tmp_path: Path, fake_embedder: Any) -> None:
    """Candidates send the very same prompt; only their place (the candidate index) tells
    their keys apart. Without it the second candidate would be the first one's reply again."""
    cache = tmp_path / "cache.sqlite"
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path / "runs"), run_id="bon", cultures=("Japan",),
                                 strategy="best-of-n", best_of_n=4, llm={"cache": str(cache)})
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
    assert record["cache"]["hits"] == 0
    answers = [t["parsed"]["answer"] for t in _turns(run_dir) if t["template"] == "culture_expert_answer"]
    assert len(answers) == 4 and len(set(answers)) == 4
    versions = read_jsonl(run_dir / "trajectories.jsonl")
    assert len({v["response"] for v in versions}) == 4


def _llm(url: str, cache: ResponseCache | None, **settings: Any) -> RoleLLM:
    llm_settings = LLMSettings(backoff=0.01, **settings)
    return RoleLLM("culture_expert", llm_settings, RequestLimiter(2), MethodMemory("json_schema"),
                   url, "stub", cache=cache)


ASK = [{"role": "user", "content": "How do you greet an elder at home?"}]


def test_a_refused_reply_and_an_error_are_never_stored(tmp_path: Path) -> None:
    """The first reply names the culture (the checks refuse it, the turn re-asks): only the
    accepted re-ask is stored, so a rerun sends the first request again and takes the second
    from the cache. A call that fails for good stores nothing."""
    refused = {"answer": "In Japan we bow to the elder and greet them first."}
    fine = {"answer": "We bow to the elder and greet them before anyone else."}

    def reply(body: dict[str, Any], name: str, value: Any) -> Any:
        return refused if len(body["messages"]) == 1 else fine

    path = tmp_path / "cache.sqlite"
    with StubOpenAIServer(structured=reply) as stub, ResponseCache.open(path) as cache:
        rules = answer_rules("Japan", ASK[0]["content"])
        parsed, first = asyncio_run(_llm(stub.url, cache, seed=1).structured(
            ASK, ExpertAnswer, CallResult(seed_key="s#0"), context=rules))
        assert parsed.answer == fine["answer"] and first.retries == 1 and first.cache_misses == 2
        assert cache.count() == 1
        sent = len(stub.requests)
        _, again = asyncio_run(_llm(stub.url, cache, seed=1).structured(
            ASK, ExpertAnswer, CallResult(seed_key="s#0"), context=rules))
        assert (again.cache_misses, again.cache_hits, len(stub.requests) - sent) == (1, 1, 1)
        assert not again.cached  # one request of the turn was sent
    with StubOpenAIServer(faults=FaultPlan(rule=lambda body: "500")) as broken, \
            ResponseCache.open(tmp_path / "errors.sqlite") as cache:
        with pytest.raises(EndpointError):
            asyncio_run(_llm(broken.url, cache, max_retries=1).structured(ASK, ExpertAnswer))
        assert cache.count() == 0


def test_a_stored_reply_todays_checks_refuse_is_dropped_and_asked_again(tmp_path: Path) -> None:
    with StubOpenAIServer() as stub, ResponseCache.open(tmp_path / "c.sqlite") as cache:
        llm = _llm(stub.url, cache)
        asyncio_run(llm.structured(ASK, ExpertAnswer, CallResult(seed_key="s#0")))
        # Overwrite the stored reply with one the checks refuse (as a newer check would).
        (key,) = [row[0] for row in cache._db.execute("select key from replies")]
        cache.put(key, AIMessage(content='{"answer": ""}'), "x", "stub")
        sent = len(stub.requests)
        _, result = asyncio_run(_llm(stub.url, cache).structured(ASK, ExpertAnswer,
                                                                  CallResult(seed_key="s#0")))
        assert (result.cache_hits, result.cache_misses, len(stub.requests) - sent) == (0, 1, 1)
        assert "answer" in json.loads(cache.get(key).message.content)  # type: ignore[union-attr]


def test_neither_the_api_key_nor_url_credentials_reach_the_cache_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cache-secret-0123456789")
    path = tmp_path / "cache.sqlite"
    with StubOpenAIServer() as stub:
        url = stub.url.replace("http://", "http://someone:pa55word-zz@")
        with ResponseCache.open(path) as cache:
            asyncio_run(_llm(url, cache).structured(ASK, ExpertAnswer, CallResult(seed_key="s#0")))
            assert cache.count() == 1
            # Without the credentials it is the same endpoint: the same key.
            _, hit = asyncio_run(_llm(stub.url, cache).structured(ASK, ExpertAnswer,
                                                                   CallResult(seed_key="s#0")))
            assert hit.cached
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for secret in (b"sk-cache-secret", b"pa55word", b"someone"):
        assert secret not in stored


def asyncio_run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


def _writer(path: str, worker: int, rows: int, start: Any) -> None:
    """One process's share of the concurrent writes: a put and a read-back per row."""
    cache = ResponseCache.open(path)
    start.wait()
    for row in range(rows):
        key = f"{worker}-{row}"
        cache.put(key, AIMessage(content=f"reply {key}", usage_metadata={
            "input_tokens": row, "output_tokens": 1, "total_tokens": row + 1}), "e", "m")
        hit = cache.get(key)
        assert hit is not None and hit.message.content == f"reply {key}"
    cache.close()


def test_two_processes_writing_one_cache_file_at_once_leave_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    rows = 1000
    workers = [context.Process(target=_writer, args=(str(path), n, rows, start)) for n in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    with sqlite3.connect(path) as db:
        assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
        assert db.execute("select count(*) from replies").fetchone()[0] == 2 * rows
    with ResponseCache.open(path) as cache:
        assert cache.get("1-999").message.content == "reply 1-999"  # type: ignore[union-attr]


@pytest.mark.parametrize(("content", "needle"), [
    (b"this is not a database at all " * 100, "not a usable CAReDiO response cache"),
    (None, "not a CAReDiO response cache (an SQLite database with tables notes)"),
])
def test_a_corrupt_or_foreign_cache_file_is_one_line_exit_2_and_nothing_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        content: bytes | None, needle: str) -> None:
    import caredio.memory.embeddings as embeddings

    monkeypatch.setitem(embeddings._shared, embeddings.shared_key("minilm"), HashEmbedder())
    path = tmp_path / "cache.sqlite"
    if content is None:
        with sqlite3.connect(path) as db:
            db.execute("create table notes (text)")
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    cli = in_process_cli(monkeypatch, capsys)
    out = tmp_path / "runs"
    with StubOpenAIServer() as stub:
        code, _, err = cli("run", "--base-url", stub.url, "--model", "stub", "--memory", ":memory:",
                           "--out", str(out), "--cultures", "Japan,China", "--topics", "food_drink",
                           "--run-id", "r", "--quiet", "--cache", str(path))
        assert stub.requests == []
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {path}: llm.cache: ") and needle in lines[0]
    assert not out.exists()
    assert path.read_bytes() == before  # not "repaired" or overwritten


def test_the_cache_flag_takes_on_off_or_a_path(tmp_path: Path) -> None:
    from caredio.config.loading import load_settings
    from caredio.llm.cache import DEFAULT_PATH, cache_path

    assert cache_path(load_settings(llm={"cache": "on"}).llm.cache) == Path(DEFAULT_PATH)
    assert cache_path(load_settings(llm={"cache": "off"}).llm.cache) is None
    assert cache_path(load_settings().llm.cache) is None  # off by default
    assert cache_path(load_settings(llm={"cache": "x/c.db"}).llm.cache) == Path("x/c.db")
    with pytest.raises(UserInputError, match=r"--cache: llm\.cache"):
        load_settings(llm={"cache": " "})
    with pytest.raises(UserInputError, match="is a directory"):
        ResponseCache.open(tmp_path)


def test_resume_takes_another_cache_file(tmp_path: Path, fake_embedder: Any) -> None:
    """A run's cache setting is in its config; `caredio resume --cache` replaces it."""
    from caredio.run.resumption import resumed_settings

    with StubOpenAIServer() as stub:
        run_dir, _ = _run(stub, tmp_path / "runs", "r", tmp_path / "a.sqlite", fake_embedder)
    assert resumed_settings(run_dir).llm.cache == str(tmp_path / "a.sqlite")
    assert resumed_settings(run_dir, cache="off").llm.cache is False
    assert resumed_settings(run_dir, cache=str(tmp_path / "b.sqlite")).llm.cache == str(tmp_path / "b.sqlite")


def test_the_embedded_server_is_known_by_its_model_file_not_its_port(tmp_path: Path) -> None:
    """It listens on a new loopback port at every start: keyed by the port, a rerun on the
    embedded model would never hit (measured: 0 hits before this). A configured endpoint is
    known by its public URL."""
    from caredio.config.loading import load_settings
    from caredio.llm.endpoint import open_run_cache

    embedded = load_settings(llm={"cache": str(tmp_path / "c.sqlite")})
    first = open_run_cache(embedded, "http://127.0.0.1:41001/v1")
    second = open_run_cache(embedded, "http://127.0.0.1:41002/v1")
    assert first is not None and second is not None
    name = first.endpoint("http://127.0.0.1:41001/v1")
    assert name == second.endpoint("http://127.0.0.1:41002/v1") and name.startswith("embedded:")
    configured = load_settings(llm={"cache": str(tmp_path / "c.sqlite"), "base_url": "http://127.0.0.1:41001/v1"})
    third = open_run_cache(configured, "http://127.0.0.1:41001/v1")
    assert third is not None and third.endpoint("http://127.0.0.1:41001/v1") == "http://127.0.0.1:41001/v1"
    for cache in (first, second, third):
        cache.close()
