"""How a sample is made: the three-agent loop, or a baseline it must beat (docs/design.md 2.4).

* ``loop`` — graph/sample.py (its nodes in graph/nodes.py): draft, then critique and refine until converged.
* ``one-shot`` — the culture expert's question and insider answer, scored, nothing more.
* ``best-of-n`` — the same question, ``n`` insider answers at the run's temperature (each
  request with its own seed when ``llm.seed`` is set), every one scored; the best by ``J`` kept.

The baselines share the loop's draft node, its scorer (with the same contrast answers as
evidence), its records and its checkpoints, so their outputs, trace and resume are those of a
loop run: one-shot is best-of-n with ``n = 1``. A candidate is one node, so a resumed sample
continues after its last scored answer.

The rule for n (``best_of_n`` unset): the LLM calls of a loop sample that runs all
``max_rounds`` rounds, less the calls best-of-n spends besides its answers (the question and one
contrast answer per related culture). With 2 related cultures and 3 rounds that is 14 calls and
n = 11. It is the loop's most expensive sample, an upper bound of its mean, so the baseline is
never given less than the loop; to match a measured mean instead, pass ``--best-of-n`` (the
efficacy benchmark does, from its loop run).
"""

from __future__ import annotations

import logging
from typing import Any

from langgraph.graph import END, START, StateGraph

from caredio.config.settings import LoopSettings
from caredio.errors import ModelOutputError
from caredio.graph.nodes import (
    contrast_answers,
    draft_node,
    finalize_node,
    new_version,
    record_version,
    score_state,
    turn,
)
from caredio.graph.routing import (
    FINALIZE,
    REFINE_RESPONSE,
    STEP_MARGIN,
    next_refinement,
    step_limit,
)
from caredio.graph.sample import build_sample_graph
from caredio.graph.state import SampleState
from caredio.graph.toolkit import Toolkit
from caredio.rundir.formats import PlanEntry

log = logging.getLogger(__name__)

STRATEGIES = ("loop", "one-shot", "best-of-n")
ANSWER = "answer"
SCORE = "score"


def loop_calls(loop: LoopSettings, contrast: int) -> int:
    """LLM calls of one loop sample that runs ``max_rounds`` rounds with ``contrast`` related
    cultures: the draft (question, answer), then per scored version a critique, plus the
    contrast answers whenever the question is new; a response step is one call, a question
    step two (the new question and its answer)."""
    calls = 2 + contrast + 1
    for round_ in range(loop.max_rounds):
        if next_refinement(round_, loop) == REFINE_RESPONSE:
            calls += 1 + 1
        else:
            calls += 2 + contrast + 1
    return calls


def candidates(strategy: str, best_of_n: int | None, loop: LoopSettings, contrast: int) -> int:
    """Answers per sample: 1 for one-shot; ``best_of_n``, or the rule above, for best-of-n."""
    if strategy == "one-shot":
        return 1
    if best_of_n is not None:
        return best_of_n
    return max(2, loop_calls(loop, contrast) - 1 - contrast)


def sample_step_limit(toolkit: Toolkit, spec: PlanEntry) -> int:
    """LangGraph's recursion limit for one sample of this strategy (see routing.step_limit)."""
    if toolkit.recipe.strategy == "loop":
        return step_limit(toolkit.recipe.loop)
    n = candidates(toolkit.recipe.strategy, toolkit.recipe.best_of_n, toolkit.recipe.loop, len(spec["contrast"]))
    # input step + draft + n scorings + (n - 1) further answers + finalize
    return 2 * n + 2 + STEP_MARGIN


def build_strategy_graph(toolkit: Toolkit, checkpointer: Any = None) -> Any:
    """The per-sample graph of the toolkit's strategy."""
    if toolkit.recipe.strategy == "loop":
        return build_sample_graph(toolkit, checkpointer)
    if toolkit.recipe.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {toolkit.recipe.strategy!r}")
    return build_candidates_graph(toolkit, checkpointer)


def build_candidates_graph(toolkit: Toolkit, checkpointer: Any = None) -> Any:
    """draft -> score -> (answer -> score)* -> finalize: one-shot and best-of-n."""

    def wanted(state: SampleState) -> int:
        recipe = toolkit.recipe
        return candidates(recipe.strategy, recipe.best_of_n, recipe.loop, len(state["contrast"]))

    async def score(state: SampleState) -> dict[str, Any]:
        answers, cache = await contrast_answers(toolkit, state, turn(toolkit, state, state["round"]))
        scored, judged = await score_state(toolkit, state, answers)
        version = new_version(state, scored, answers, judged)
        record_version(toolkit, version)
        done = state["round"] + 1 >= wanted(state)  # candidate i is round i, scored or not
        return {"versions": [version], "contrast_answers": answers,
                "contrast_question": state["question"], "contrast_cache": cache,
                "next_step": FINALIZE if done else ANSWER,
                "stop_reason": toolkit.recipe.strategy if done else "continue"}

    async def answer(state: SampleState) -> dict[str, Any]:
        # Candidate i is round i: the same prompt as the draft's answer, sampled again.
        round_ = state["round"] + 1
        try:
            response = await toolkit.team.expert.answer(turn(toolkit, state, round_), state["culture"],
                                                   state["question"], state["knowledge"])
        except ModelOutputError as exc:
            # A candidate that stays unusable through its re-asks is a draw that came up
            # empty: its calls are spent (and in the trace), the sample keeps the others. Failing
            # the sample would cost best-of-n whole samples the loop keeps.
            log.info("sample %s: candidate %d unusable after its re-asks (%s)", state["sample_id"], round_, exc)
            done = round_ + 1 >= wanted(state)
            return {"round": round_, "step": "candidate", "next_step": FINALIZE if done else ANSWER,
                    "stop_reason": toolkit.recipe.strategy if done else "continue"}
        return {"response": response, "round": round_, "step": "candidate", "next_step": SCORE}

    builder = StateGraph(SampleState)
    builder.add_node("draft", draft_node(toolkit))
    builder.add_node(SCORE, score)
    builder.add_node(ANSWER, answer)
    builder.add_node(FINALIZE, finalize_node(toolkit))
    builder.add_edge(START, "draft")
    builder.add_edge("draft", SCORE)
    builder.add_conditional_edges(SCORE, lambda state: state["next_step"], [ANSWER, FINALIZE])
    builder.add_conditional_edges(ANSWER, lambda state: state["next_step"], [SCORE, ANSWER, FINALIZE])
    builder.add_edge(FINALIZE, END)
    return builder.compile(checkpointer=checkpointer, name=f"sample_{toolkit.recipe.strategy}")
