"""The loop's choices in the real sample graph: which version a refinement rewrites, and what a
rejected refinement changes. The agents are the real ones against the FAKE stub server, scripted
to write known texts; the scorer is a FAKE that scores those texts by a table, so the routing
(our own logic) is what is tested, not the scores.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from caredio.graph.routing import best_version
from caredio.graph.sample import build_sample_graph
from caredio.graph.toolkit import Evidence, Outputs, Recipe, Toolkit
from caredio.memory.ingest import starter_pack
from caredio.memory.questions import QuestionBook
from caredio.memory.sample_score import SampleScore
from caredio.memory.store import CulturalMemory
from caredio.prompts import load_templates
from caredio.run.agent_factory import build_agents
from caredio.rundir.files import read_jsonl
from caredio.rundir.formats import PlanEntry
from caredio.rundir.recorder import RunRecorder
from testing.jobs import stub_settings
from testing.stub_server import StubOpenAIServer

# response text -> (R, D); J = (R + D) / 2
SCORES = {
    "the draft answer": (0.6, 0.4),       # J 0.50
    "refined answer 1": (0.3, 0.9),          # J 0.60: R fell by 0.3 while D rose
    "answer to question 1": (0.55, 0.45),  # J 0.50
}


class TableScorer:
    """FAKE scorer: R and D from the table above (0.5, 0.5 for any other text)."""

    def score(self, question: str, response: str, culture: str, contrast: list[str],
              contrast_responses: Any = None, exclude_ids: Any = None) -> SampleScore:
        r, d = SCORES.get(response, (0.5, 0.5))
        return SampleScore(culture=culture, representativeness=r, distinctiveness=d,
                           objective=(r + d) / 2, attribution={culture: d},
                           predicted_culture=culture, contrast=contrast)


def _scripted() -> Any:
    counters = {"RefinedResponse": 0, "RefinedQuestion": 0}
    question_of_answer: dict[str, str] = {}

    def structured(body: dict[str, Any], name: str, value: Any) -> Any:
        text = "\n".join(str(m.get("content")) for m in body["messages"])
        if name == "ExpertQuestion":
            return {"question": "What is the draft question?"}
        if name == "ExpertAnswer":
            asked = re.search(r"^Question: (.*)$", text, re.M)
            question = asked.group(1) if asked else ""
            return {"answer": question_of_answer.get(question, "the draft answer")}
        if name in counters:
            counters[name] += 1
            if name == "RefinedQuestion":
                question = f"What is question {counters[name]}?"
                question_of_answer[question] = f"answer to question {counters[name]}"
                return {"question": question}
            return {"response": f"refined answer {counters[name]}"}
        return value

    return structured


def _run(tmp_path: Path, fake_embedder: Any, **loop: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One sample, 3 rounds (response, question, response); returns (versions, refiner turns)."""
    with StubOpenAIServer(structured=_scripted()) as stub:
        settings = stub_settings(stub.url, str(tmp_path), rounds=3, loop=loop)
        templates = load_templates()
        team = build_agents(settings, templates, stub.url, "stub")
        memory = CulturalMemory.open(fake_embedder)
        memory.add_knowledge([item for item in starter_pack() if item.culture == "Japan"])
        recorder = RunRecorder.create(tmp_path / "run", settings.snapshot(), templates)
        toolkit = Toolkit(team, Evidence(memory, TableScorer(), QuestionBook()),  # type: ignore[arg-type]
                          Outputs(recorder, recorder), Recipe(settings.loop))
        spec = PlanEntry(sample_id="s", run_id="run", culture="Japan", topic="greetings_etiquette",
                          topic_name="Greetings", topic_description="How people greet",
                          contrast=["China"], index=0)
        final = asyncio.run(build_sample_graph(toolkit).ainvoke(dict(spec), {"recursion_limit": 20}))
    turns = read_jsonl(tmp_path / "run" / "trace.jsonl")
    assert final["done"]
    return final["versions"], [t for t in turns if t["agent"] == "refiner"]


def _current(turn: dict[str, Any]) -> str:
    """What a refiner turn was asked to rewrite (its prompt's current answer or question)."""
    prompt = turn["messages"][-1]["content"]
    found = re.search(r"Current (?:answer|question): (.*)", prompt)
    assert found, prompt
    return found.group(1).strip()


def test_by_default_each_refinement_rewrites_the_latest_version(tmp_path: Path, fake_embedder: Any) -> None:
    versions, turns = _run(tmp_path, fake_embedder)
    assert [v["response"] for v in versions] == ["the draft answer", "refined answer 1",
                                                 "answer to question 1", "refined answer 2"]
    assert [(t["step"], _current(t)) for t in turns] == [
        ("refine_response", "the draft answer"), ("refine_question", "What is the draft question?"),
        ("refine_response", "answer to question 1")]


def test_refining_from_the_best_rewrites_the_highest_j_so_far(tmp_path: Path, fake_embedder: Any) -> None:
    versions, turns = _run(tmp_path, fake_embedder, refine_from="best")
    # After round 1 the best is "refined answer 1" (J 0.60): both later refinements start from it.
    assert [(t["step"], _current(t)) for t in turns] == [
        ("refine_response", "the draft answer"), ("refine_question", "What is the draft question?"), ("refine_response", "refined answer 1")]
    assert versions[3]["question"] == "What is the draft question?"  # the response step kept its question


def test_a_rejected_refinement_is_not_critiqued_not_kept_and_not_refined(
        tmp_path: Path, fake_embedder: Any) -> None:
    versions, turns = _run(tmp_path, fake_embedder, max_r_drop=0.1)
    flags = [bool(v.get("rejected")) for v in versions]
    assert flags == [False, True, False, False]  # "refined answer 1" lost 0.3 of R
    # The question step after it rewrote the draft's question, the response step after that
    # the latest kept version.
    assert [_current(t) for t in turns] == ["the draft answer", "What is the draft question?", "answer to question 1"]
    critiques = [t for t in read_jsonl(tmp_path / "run" / "trace.jsonl") if t["step"] == "critique"]
    assert [t["round"] for t in critiques] == [0, 2, 3]  # none for the rejected round 1

    assert best_version(versions)["response"] == "the draft answer"  # J 0.50, first of the ties


@pytest.mark.parametrize("first_step, expected", [("response", ["response", "question", "response"]),
                                                  ("question", ["question", "response", "question"])])
def test_the_alternation_starts_with_the_first_step(tmp_path: Path, fake_embedder: Any,
                                                    first_step: str, expected: list[str]) -> None:
    versions, turns = _run(tmp_path, fake_embedder, first_step=first_step)
    assert [t["step"] for t in turns] == [f"refine_{step}" for step in expected]
    assert [v["step"] for v in versions] == ["initial", *expected]
