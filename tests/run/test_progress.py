"""What a user watches during and after a run: the live display, the log lines, the time a call
spends queued versus at the endpoint, and the report's scales.

Runs here use the FAKE stub server and the FAKE HashEmbedder: the subject is our progress and
accounting logic, not content. No timing is asserted; the stub's fixed latency only gives a
lower bound that makes "a call waited" certain.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import caredio.cli.run_display as run_display
from caredio.cli.run_display import RunDisplay
from caredio.config.settings import LLMSettings
from caredio.llm.client import CallResult, RoleLLM
from caredio.llm.limits import RequestLimiter
from caredio.llm.structured import MethodMemory
from caredio.run.runner import start_run
from caredio.rundir.files import read_jsonl
from testing.jobs import HashEmbedder, stub_settings
from testing.stub_server import FaultPlan, StubOpenAIServer


def _text(display: RunDisplay) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(display)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_progress_moves_while_no_sample_has_finished(tmp_path: Path) -> None:
    """Samples run in parallel and finish together: the display must show the rounds done
    before the first sample is done (it sat at 0/2 for most of a run)."""
    display = RunDisplay(Console(file=io.StringIO()), quiet=True)
    seen: list[str] = []

    def on_event(kind: str, data: dict[str, Any]) -> None:
        display.on_event(kind, data)
        seen.append(_text(display))

    with StubOpenAIServer(faults=FaultPlan(reject_json_schema=True)) as stub:
        settings = stub_settings(stub.url, str(tmp_path), rounds=2, concurrency=2)
        start_run(settings, on_event, embedder=HashEmbedder())
    before_any_done = [text for text in seen if "samples 0/2 done" in text]
    moved = [text for text in before_any_done if re.search(r"Japan .* [1-9]/3 versions", text)]
    assert moved, before_any_done[-1]
    assert any(re.search(r"japan-food_drink-000\s+round 1/2\s+refiner: refine_response", t) for t in seen)
    assert any(re.search(r"\d+ under way, the endpoint takes 2 at a time", t) for t in seen)
    assert re.search(r"Japan .* 1/1 samples · 3/3 versions", seen[-1])


def test_the_clock_ticks_between_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live view is re-rendered on a timer, so it must compute the time when drawn."""
    now = [1000.0]
    monkeypatch.setattr(run_display, "_now", lambda: now[0])
    terminal = Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)
    with RunDisplay(terminal) as display:
        display.on_event("planned", {"planned": 1, "cultures": {"Japan": 1}, "max_rounds": 2})
        now[0] += 65
        assert display.live is not None
        display.live.refresh()  # what Live's timer thread does four times a second
        now[0] += 60
        display.live.refresh()
    shown = terminal.file.getvalue()  # type: ignore[attr-defined]
    assert "elapsed 1m05s" in shown and "elapsed 2m05s" in shown


def _llm(url: str, concurrency: int = 1) -> RoleLLM:
    settings = LLMSettings(timeout=5.0, backoff=0.01)
    return RoleLLM("culture_expert", settings, RequestLimiter(concurrency), MethodMemory(), url, "stub")




def test_the_json_schema_probe_is_not_a_warning_but_a_real_500_is(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import BaseModel

    import caredio.llm.client

    class Answer(BaseModel):
        text: str

    async def no_wait(seconds: float) -> None:
        return None

    monkeypatch.setattr(caredio.llm.client, "_sleep", no_wait)
    messages = [{"role": "user", "content": "Say it."}]
    # The first request probes json_schema (rejected twice, as llama.cpp does); then function
    # calling works and is confirmed; then an injected 500 hits the confirmed method.
    with StubOpenAIServer(faults=FaultPlan(reject_json_schema=True, script=("ok", "500"))) as stub:
        llm = _llm(stub.url)

        async def calls() -> None:
            with caplog.at_level(logging.INFO, logger="caredio.llm.client"):
                await llm.structured(messages, Answer, CallResult())
                probe = [r for r in caplog.records if "InternalServerError (500)" in r.getMessage()]
                assert probe and all(r.levelno == logging.INFO for r in probe)
                caplog.clear()
                await llm.structured(messages, Answer, CallResult())

        asyncio.run(calls())
    real = [r for r in caplog.records if "InternalServerError (500)" in r.getMessage()]
    assert real and real[0].levelno == logging.WARNING


def test_queue_time_and_request_time_are_recorded_apart(tmp_path: Path) -> None:
    """Two samples start together against one request slot: one waits while the other's
    request (at least the stub's 50 ms) is answered; latency holds both."""
    with StubOpenAIServer(latency=0.05) as stub:
        settings = stub_settings(stub.url, str(tmp_path), concurrency=1)
        run_dir, _ = start_run(settings, lambda kind, data: None, embedder=HashEmbedder())
    turns = read_jsonl(run_dir / "trace.jsonl")
    assert all(t["request_ms"] >= 50 for t in turns)
    assert all(t["latency_ms"] >= t["request_ms"] + t["queue_ms"] - 2 for t in turns)  # ms rounding
    assert sum(t["queue_ms"] for t in turns) >= 40


# -- report ------------------------------------------------------------------------------------

def _hand_made_run(tmp_path: Path, turns: list[dict[str, Any]]) -> Path:
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"run_id": "r", "status": "completed"}))
    (run / "config.json").write_text(json.dumps({"cultures": ["A", "B"], "topics": ["t", "u"]}))
    versions = [
        {"sample_id": "a", "culture": "A", "topic": "t", "round": 0, "step": "initial",
         "question": "q?", "response": "r", "representativeness": 0.2, "distinctiveness": 0.4,
         "objective": 0.3},
        {"sample_id": "b", "culture": "B", "topic": "t", "round": 0, "step": "initial",
         "question": "q?", "response": "r", "representativeness": 0.8, "distinctiveness": 0.9,
         "objective": 0.85},
    ]
    (run / "trajectories.jsonl").write_text("".join(json.dumps(v) + "\n" for v in versions))
    (run / "trace.jsonl").write_text("".join(json.dumps(t) + "\n" for t in turns))
    return run


def test_coverage_colours_mean_best_j_on_its_true_scale(tmp_path: Path) -> None:
    """The scale ran to 1.6 while every value was at most 1: all cells one flat colour."""
    from caredio.rundir.reader import open_run
    from caredio.tools.report import coverage_figure

    run = open_run(_hand_made_run(tmp_path, []))
    figure = coverage_figure(run, run.trajectories)
    [image] = figure.axes[0].images
    assert image.get_clim() == (0.0, 1.0)
    cells = image.get_array()
    assert cells[0][0] == pytest.approx(0.3) and cells[0][1] == pytest.approx(0.85)
    assert cells.mask[1][0] and cells.mask[1][1]  # topic u has no sample: a grey gap
    assert image.cmap(image.norm(0.3)) != image.cmap(image.norm(0.85))


def test_cost_keeps_time_at_the_endpoint_and_time_in_the_queue_apart(tmp_path: Path) -> None:
    from caredio.rundir.reader import open_run
    from caredio.tools.report import cost_by_agent

    def turn(agent: str, latency: int, request: int | None, queue: int | None) -> dict[str, Any]:
        record = {"sample_id": "a", "round": 0, "agent": agent, "input_tokens": 1, "output_tokens": 1,
                  "latency_ms": latency}
        if request is not None:
            record.update(request_ms=request, queue_ms=queue)
        return record

    run = open_run(_hand_made_run(tmp_path, [
        turn("contrast_critic", 9000, 1000, 8000), turn("contrast_critic", 5000, 2000, 2900),
        turn("refiner", 4000, None, None),  # a trace from before queue time was recorded
    ]))
    cost = cost_by_agent(run)
    assert cost["contrast_critic"]["request_seconds"] == pytest.approx(3.0)
    assert cost["contrast_critic"]["queue_seconds"] == pytest.approx(10.9)
    assert cost["refiner"]["request_seconds"] == pytest.approx(4.0)
    assert cost["refiner"]["queue_seconds"] == 0.0
