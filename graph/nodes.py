"""The nodes of a sample's graph, each built by a factory from the :class:`Toolkit`.

A node takes the state and returns a partial update; it never mutates the state. The draft,
the scoring of a version and the finalize step are shared with the baseline strategies
(graph/strategies.py); the loop's own graph is wired in graph/sample.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from caredio.agents.base import TurnContext
from caredio.agents.contrast_critic import critique_text
from caredio.errors import EndpointDown, EndpointError, ModelOutputError
from caredio.graph.routing import FINALIZE, base_version, best_version, decide, rejected
from caredio.graph.state import SampleState
from caredio.graph.toolkit import Toolkit, turn_context
from caredio.memory.judge import judge_fields
from caredio.memory.sample_score import SampleScore
from caredio.rundir.formats import JUDGE_SCORES, Version, dataset_line

log = logging.getLogger(__name__)

KNOWLEDGE_K = 6
DRAFT_ATTEMPTS = 2  # question + answer drafts before the sample fails
REFINEMENT_UNUSABLE = "refinement_unusable"
T = TypeVar("T")


def turn(toolkit: Toolkit, state: SampleState, round_: int) -> TurnContext:
    """The context of an agent turn of this sample in ``round_``."""
    return turn_context(toolkit, state["run_id"], state["sample_id"], round_)


def _history(versions: list[Version]) -> list[dict[str, Any]]:
    """What the refiner sees of earlier versions: text and scores, oldest first."""
    keep = ("round", "step", "question", "response", "representativeness", "distinctiveness", "objective")
    return [{k: dict(v)[k] for k in keep} for v in versions[-4:]]


def draft_node(toolkit: Toolkit) -> Any:
    """The culture expert's question and first answer, grounded in half the topic's knowledge."""

    async def draft(state: SampleState) -> dict[str, Any]:
        toolkit.outputs.on_event("sample_started", {"sample_id": state["sample_id"], "culture": state["culture"]})
        # About half of the topic's nearest knowledge is shown to the agents; the rest scores
        # the sample (cross-fitting: J must not measure how much of the prompt was copied).
        items = await asyncio.to_thread(
            toolkit.evidence.memory.grounding, state["culture"],
            f"{state['topic_name']}: {state['topic_description']}", KNOWLEDGE_K, state["topic"],
            state["sample_id"],
        )
        knowledge = [item.text for item in items]
        context = turn(toolkit, state, 0)
        culture, topic = state["culture"], state["topic"]
        unanswered: list[str] = []
        for attempt in range(1, DRAFT_ATTEMPTS + 1):
            question = ""
            try:
                async with toolkit.evidence.questions.drafting(culture, topic):  # each draft sees the ones before
                    avoid = await toolkit.evidence.questions.earlier(culture, topic, state["sample_id"])
                    question = await toolkit.team.expert.write_question(
                        context, culture, state["topic_name"], state["topic_description"], knowledge,
                        avoid_questions=[*unanswered, *avoid], contrast=state["contrast"],
                    )
                    toolkit.evidence.questions.add(culture, topic, state["sample_id"], question)
                response = await toolkit.team.expert.answer(context, state["culture"], question, knowledge)
                break
            except ModelOutputError as exc:
                # Its re-asks are spent; a new question, told not to repeat this one, may be one
                # the model can answer. The failed turns are in the trace.
                unanswered += [question] if question else []
                if attempt == DRAFT_ATTEMPTS:
                    raise
                log.info("sample %s: draft %d unusable (%s); drafting a new question",
                         state["sample_id"], attempt, exc)
        return {"knowledge": knowledge, "knowledge_ids": [item.id for item in items],
                "question": question, "response": response, "round": 0, "step": "initial"}

    return draft


async def contrast_answers(toolkit: Toolkit, state: SampleState, context: TurnContext,
                           ) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The related cultures' answers to the state's question, and the updated cache.

    Contrast answers depend on the question only: a question seen before reuses them.
    """
    cache = dict(state.get("contrast_cache") or {})
    if state.get("contrast_question"):  # a checkpoint written before the cache existed
        cache.setdefault(state["contrast_question"], state["contrast_answers"])
    question, contrast = state["question"], state["contrast"]
    if question not in cache:
        answers = await all_or_none([
            toolkit.team.critic.contrast_answer(context, other, question) for other in contrast
        ])
        cache[question] = dict(zip(contrast, answers, strict=True))
    return cache[question], cache


async def all_or_none(calls: list[Coroutine[Any, Any, T]]) -> list[T]:
    """The calls' results, run concurrently; if one fails, the others are cancelled and waited
    for before its error is raised.

    No call outlives its sample attempt (asyncio.gather left the others running): on a Ray
    worker the driver gives the attempt's request permits back once it has ended, and a call
    still in flight then would exceed the run's request limit; it would also spend requests
    on a sample already failed and trace its turn after the sample's end.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except BaseExceptionGroup as failed:
        errors = list(failed.exceptions)
    else:
        return [task.result() for task in tasks]
    # The first failure, as gather raised it; but one that stops the run (EndpointDown) or is
    # a bug outranks a failure of this sample alone.
    raise next((e for e in errors if isinstance(e, EndpointDown)
                or not isinstance(e, (EndpointError, ModelOutputError))), errors[0])


async def score_state(toolkit: Toolkit, state: SampleState, answers: dict[str, str],
                      ) -> tuple[SampleScore, dict[str, float]]:
    """The loop's score of the state's question and response, and the judge's (if any)."""
    score = await asyncio.to_thread(
        toolkit.evidence.scorer.score, state["question"], state["response"], state["culture"],
        state["contrast"], answers, state.get("knowledge_ids", []),
    )
    judged = None
    if toolkit.evidence.judge is not None:
        judged = await asyncio.to_thread(toolkit.evidence.judge.score, state["question"], state["response"],
                                         state["culture"], state["contrast"])
    return score, judge_fields(judged)


def new_version(state: SampleState, score: SampleScore, answers: dict[str, str],
                judged: dict[str, float], critique: str = "") -> Version:
    """The whole trajectory line of the state's scored question and response.

    Whole, judge's scores included (under their own keys), because the checkpoint keeps it: a
    sample continued from a checkpoint writes any line a dead process never wrote, and it
    must be the line that process would have written.
    """
    version: Version = {
        "sample_id": state["sample_id"], "round": state["round"], "step": state["step"],
        "question": state["question"], "response": state["response"],
        "representativeness": round(score.representativeness, 4),
        "distinctiveness": round(score.distinctiveness, 4),
        "objective": round(score.objective, 4),
        "attribution": {k: round(v, 4) for k, v in score.attribution.items()},
        "critique": critique, "missing_core": score.missing_core,
        "culture": state["culture"], "topic": state["topic"], "contrast": state["contrast"],
        "contrast_answers": answers, "grounding_ids": state.get("knowledge_ids", []),
        "score_flags": score.flags,
    }
    if score.evidence:
        version["evidence"] = score.evidence  # type: ignore[typeddict-item]
    if judged:
        version["judge_representativeness"] = judged["judge_representativeness"]
        version["judge_distinctiveness"] = judged["judge_distinctiveness"]
        version["judge_objective"] = judged["judge_objective"]
    return version


def record_version(toolkit: Toolkit, version: Version) -> None:
    """The trajectory line and the progress event."""
    toolkit.outputs.recorder.write_version(version)
    toolkit.outputs.on_event("version", dict(version))


def judged_of(version: Version) -> dict[str, float]:
    """The judge's scores a version was recorded with (empty without a judge)."""
    line: dict[str, Any] = dict(version)
    return {key: line[key] for key in JUDGE_SCORES if key in line}


def finalize_node(toolkit: Toolkit) -> Any:
    """Keep the best version (never simply the last): the dataset line, with the judge's view."""

    async def finalize(state: SampleState) -> dict[str, Any]:
        best = best_version(state["versions"])
        # The judge scored every version as it was recorded: the best's scores are those
        # (a resumed finished sample rewrites this line from them, caredio/run/executors/local.py).
        judged = judged_of(best)
        if toolkit.evidence.judge is not None and not judged:  # a version checkpointed without them
            judged = judge_fields(await asyncio.to_thread(
                toolkit.evidence.judge.score, best["question"], best["response"], state["culture"],
                state["contrast"]))
        line = dataset_line(state, state["versions"], best, state.get("stop_reason", ""),
                            toolkit.recipe.system_prompt, toolkit.recipe.strategy, judged)
        toolkit.outputs.recorder.write_sample(line)
        toolkit.outputs.on_event("sample_done", {"sample_id": state["sample_id"], "culture": state["culture"],
                                                 "first": state["versions"][0], "best": best})
        return {"best": best, "done": True}

    return finalize


def critique_node(toolkit: Toolkit) -> Any:
    """Contrast answers, the scores, and the critic's critique of the latest version (or its
    rejection), then the router's decision."""
    loop = toolkit.recipe.loop

    async def critique(state: SampleState) -> dict[str, Any]:
        context = turn(toolkit, state, state["round"])
        answers, cache = await contrast_answers(toolkit, state, context)
        score, judged = await score_state(toolkit, state, answers)
        previous = state.get("versions", [])
        if state["step"] != "initial" and rejected(score.representativeness,
                                                   base_version(previous, loop), loop):
            # The next refinement starts from an earlier version: no critique of this one.
            version = new_version(state, score, answers, judged, "rejected: R fell more than "
                                  f"loop.max_r_drop={loop.max_r_drop}")
            version["rejected"] = True
        else:
            review = await toolkit.team.critic.critique(
                context, culture=state["culture"], question=state["question"],
                response=state["response"], representativeness=score.representativeness,
                distinctiveness=score.distinctiveness, objective=score.objective,
                generic_sentences=score.generic_sentences, missing_core=score.missing_core,
                contrast_answers=answers,
            )
            version = new_version(state, score, answers, judged,
                                  critique_text(review, score.generic_sentences, score.missing_core))
        record_version(toolkit, version)
        next_step, reason = decide([*previous, version], loop)
        return {"versions": [version], "contrast_answers": answers,
                "contrast_question": state["question"], "contrast_cache": cache,
                "critique": version["critique"], "missing_core": score.missing_core,
                "next_step": next_step, "stop_reason": reason}

    return critique


def refine_question_node(toolkit: Toolkit) -> Any:
    """The refiner's new question for the base version, and the expert's insider answer to it."""
    loop = toolkit.recipe.loop

    async def refine_question(state: SampleState) -> dict[str, Any]:
        round_ = state["round"] + 1
        context = turn(toolkit, state, round_)
        base = base_version(state["versions"], loop)
        try:
            question = await toolkit.team.refiner.refine_question(
                context, culture=state["culture"], topic=state["topic_name"],
                question=base["question"], critique=base["critique"],
                history=_history(state["versions"]), contrast=state["contrast"],
            )
            toolkit.evidence.questions.add(state["culture"], state["topic"], state["sample_id"], question)
            # A new question needs a new insider answer before it can be scored.
            response = await toolkit.team.expert.answer(context, state["culture"], question, state["knowledge"])
        except ModelOutputError as exc:
            return refinement_unusable(state, exc)
        return {"question": question, "response": response, "round": round_, "step": "question"}

    return refine_question


def refine_response_node(toolkit: Toolkit) -> Any:
    """The refiner's rewrite of the base version's response, given its critique."""
    loop = toolkit.recipe.loop

    async def refine_response(state: SampleState) -> dict[str, Any]:
        round_ = state["round"] + 1
        base = base_version(state["versions"], loop)
        try:
            response = await toolkit.team.refiner.refine_response(
                turn(toolkit, state, round_), culture=state["culture"], question=base["question"],
                response=base["response"], critique=base["critique"],
                history=_history(state["versions"]),
                missing_core=base.get("missing_core", state.get("missing_core", [])),
                knowledge=state["knowledge"],
            )
        except ModelOutputError as exc:
            return refinement_unusable(state, exc)
        return {"question": base["question"], "response": response, "round": round_,
                "step": "response"}

    return refine_response


def refinement_unusable(state: SampleState, exc: ModelOutputError) -> dict[str, Any]:
    """A rewrite that stayed unusable after its re-asks ends the optimization; the sample
    keeps its best usable version (it has one: the draft was scored). Only a sample whose
    draft is unusable fails. The turn and its error are in the trace."""
    log.info("sample %s: refinement unusable after its re-asks, keeping the best version (%s)",
             state["sample_id"], exc)
    return {"next_step": FINALIZE, "stop_reason": REFINEMENT_UNUSABLE}


def after_refinement(state: SampleState) -> str:
    return FINALIZE if state.get("stop_reason") == REFINEMENT_UNUSABLE else "critique"


