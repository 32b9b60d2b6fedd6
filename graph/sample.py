"""The per-sample optimization graph: draft -> critique -> (refine -> critique)* -> finalize.

Nodes take the state and return a partial update; they never mutate the state. Everything
they need (agents, memory, scorer, the run recorder) comes in through :class:`Toolkit`, so the
graph is built by one factory and nothing is compiled or connected at import time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langgraph.graph import END, START, StateGraph

from caredio.agents import ContrastCritic, CultureExpert, Refiner
from caredio.agents.base import TurnContext
from caredio.agents.contrast_critic import critique_text
from caredio.config import LoopSettings
from caredio.graph.routing import FINALIZE, REFINE_QUESTION, REFINE_RESPONSE, best_version, decide
from caredio.graph.state import SampleState, Version
from caredio.memory.scoring import Scorer
from caredio.memory.store import CulturalMemory
from caredio.questions import QuestionBook
from caredio.records import RecordWriter
from caredio.tracing import TraceSink

log = logging.getLogger(__name__)

KNOWLEDGE_K = 6
Event = Callable[[str, dict[str, Any]], None]


@dataclass
class Toolkit:
    expert: CultureExpert
    critic: ContrastCritic
    refiner: Refiner
    memory: CulturalMemory
    scorer: Scorer
    recorder: RecordWriter
    sink: TraceSink
    loop: LoopSettings
    system_prompt: str | None = None
    on_event: Event = field(default=lambda kind, data: None)
    questions: QuestionBook = field(default_factory=QuestionBook)
    shared_checkpoints: bool = False  # one store for many runs: thread ids carry the run id


class _TurnEvents:
    """Forwards each finished agent turn to the run's event callback (for progress displays)."""

    def __init__(self, sink: TraceSink, on_event: Event) -> None:
        self.sink = sink
        self.on_event = on_event

    def emit(self, record: dict[str, Any]) -> None:
        self.sink.emit(record)
        self.on_event("turn", {key: record[key] for key in (
            "sample_id", "agent", "step", "input_tokens", "output_tokens", "latency_ms", "retries", "error")})


def _context(toolkit: Toolkit, state: SampleState, round_: int) -> TurnContext:
    return TurnContext(run_id=state["run_id"], sample_id=state["sample_id"], round=round_,
                       sink=_TurnEvents(toolkit.sink, toolkit.on_event))


def _history(versions: list[Version]) -> list[dict[str, Any]]:
    """What the refiner sees of earlier versions: text and scores, oldest first."""
    keep = ("round", "step", "question", "response", "representativeness", "distinctiveness", "objective")
    return [{k: dict(v)[k] for k in keep} for v in versions[-4:]]


def build_sample_graph(toolkit: Toolkit, checkpointer: Any = None) -> Any:
    """Compile the per-sample graph with the given tools and checkpointer."""

    async def draft(state: SampleState) -> dict[str, Any]:
        toolkit.on_event("sample_started", {"sample_id": state["sample_id"], "culture": state["culture"]})
        # About half of the topic's nearest knowledge is shown to the agents; the rest scores
        # the sample (cross-fitting: J must not measure how much of the prompt was copied).
        items = await asyncio.to_thread(
            toolkit.memory.grounding, state["culture"],
            f"{state['topic_name']}: {state['topic_description']}", KNOWLEDGE_K, state["topic"],
            state["sample_id"],
        )
        knowledge = [item.text for item in items]
        context = _context(toolkit, state, 0)
        culture, topic = state["culture"], state["topic"]
        async with toolkit.questions.drafting(culture, topic):  # each draft sees the ones before
            avoid = await toolkit.questions.earlier(culture, topic, state["sample_id"])
            question = await toolkit.expert.write_question(
                context, culture, state["topic_name"], state["topic_description"], knowledge,
                avoid_questions=avoid,
            )
            toolkit.questions.add(culture, topic, state["sample_id"], question)
        response = await toolkit.expert.answer(context, state["culture"], question, knowledge)
        return {"knowledge": knowledge, "knowledge_ids": [item.id for item in items],
                "question": question, "response": response, "round": 0, "step": "initial"}

    async def critique(state: SampleState) -> dict[str, Any]:
        context = _context(toolkit, state, state["round"])
        contrast = state["contrast"]
        if state.get("contrast_question") == state["question"]:
            # Contrast answers depend on the question only: a response step reuses them.
            contrast_answers = state["contrast_answers"]
        else:
            answers = await asyncio.gather(*(
                toolkit.critic.contrast_answer(context, other, state["question"]) for other in contrast
            ))
            contrast_answers = dict(zip(contrast, answers, strict=True))
        score = await asyncio.to_thread(
            toolkit.scorer.score, state["question"], state["response"], state["culture"],
            contrast, contrast_answers, state.get("knowledge_ids", []),
        )
        review = await toolkit.critic.critique(
            context, culture=state["culture"], question=state["question"],
            response=state["response"], representativeness=score.representativeness,
            distinctiveness=score.distinctiveness, objective=score.objective,
            generic_sentences=score.generic_sentences, missing_core=score.missing_core,
            contrast_answers=contrast_answers,
        )
        text = critique_text(review, score.generic_sentences, score.missing_core)
        version: Version = {
            "sample_id": state["sample_id"], "round": state["round"], "step": state["step"],
            "question": state["question"], "response": state["response"],
            "representativeness": round(score.representativeness, 4),
            "distinctiveness": round(score.distinctiveness, 4),
            "objective": round(score.objective, 4),
            "attribution": {k: round(v, 4) for k, v in score.attribution.items()},
            "critique": text, "culture": state["culture"], "topic": state["topic"],
            "contrast": contrast, "contrast_answers": contrast_answers,
            "grounding_ids": state.get("knowledge_ids", []), "score_flags": score.flags,
        }
        toolkit.recorder.write_version(dict(version))
        versions = [*state.get("versions", []), version]
        next_step, reason = decide(versions, toolkit.loop)
        toolkit.on_event("version", dict(version))
        return {"versions": [version], "contrast_answers": contrast_answers,
                "contrast_question": state["question"], "critique": text,
                "missing_core": score.missing_core, "next_step": next_step, "stop_reason": reason}

    async def refine_question(state: SampleState) -> dict[str, Any]:
        round_ = state["round"] + 1
        context = _context(toolkit, state, round_)
        question = await toolkit.refiner.refine_question(
            context, culture=state["culture"], topic=state["topic_name"],
            question=state["question"], critique=state["critique"],
            history=_history(state["versions"]),
        )
        toolkit.questions.add(state["culture"], state["topic"], state["sample_id"], question)
        # A new question needs a new insider answer before it can be scored.
        response = await toolkit.expert.answer(context, state["culture"], question, state["knowledge"])
        return {"question": question, "response": response, "round": round_, "step": "question"}

    async def refine_response(state: SampleState) -> dict[str, Any]:
        round_ = state["round"] + 1
        response = await toolkit.refiner.refine_response(
            _context(toolkit, state, round_), culture=state["culture"], question=state["question"],
            response=state["response"], critique=state["critique"],
            history=_history(state["versions"]), missing_core=state.get("missing_core", []),
            knowledge=state["knowledge"],
        )
        return {"response": response, "round": round_, "step": "response"}

    async def finalize(state: SampleState) -> dict[str, Any]:
        best = best_version(state["versions"])
        line = dataset_line(state, best, toolkit.system_prompt)
        toolkit.recorder.write_sample(line)
        toolkit.on_event("sample_done", {"sample_id": state["sample_id"], "culture": state["culture"],
                                         "first": state["versions"][0], "best": best})
        return {"best": best, "done": True}

    builder = StateGraph(SampleState)
    builder.add_node("draft", draft)
    builder.add_node("critique", critique)
    builder.add_node(REFINE_QUESTION, refine_question)
    builder.add_node(REFINE_RESPONSE, refine_response)
    builder.add_node(FINALIZE, finalize)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "critique")
    builder.add_conditional_edges(
        "critique", lambda state: state["next_step"], [REFINE_QUESTION, REFINE_RESPONSE, FINALIZE]
    )
    builder.add_edge(REFINE_QUESTION, "critique")
    builder.add_edge(REFINE_RESPONSE, "critique")
    builder.add_edge(FINALIZE, END)
    return builder.compile(checkpointer=checkpointer, name="optimize_sample")


def dataset_line(state: SampleState, best: Version, system_prompt: str | None) -> dict[str, Any]:
    """A dataset.jsonl line: OpenAI chat fine-tuning format plus metadata."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages += [{"role": "user", "content": best["question"]},
                 {"role": "assistant", "content": best["response"]}]
    first = state["versions"][0]
    return {
        "messages": messages,
        "metadata": {
            "sample_id": state["sample_id"], "run_id": state["run_id"], "culture": state["culture"],
            "topic": state["topic"], "contrast": state["contrast"],
            "representativeness": best["representativeness"],
            "distinctiveness": best["distinctiveness"], "objective": best["objective"],
            "attribution": best["attribution"], "rounds": state["versions"][-1]["round"],
            "best_round": best["round"], "best_step": best["step"],
            "stop_reason": state.get("stop_reason", ""), "versions": len(state["versions"]),
            "initial_objective": first["objective"],
        },
    }
