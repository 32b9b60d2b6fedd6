"""The convergence router: refine the question, refine the response, or stop."""

from __future__ import annotations

from collections.abc import Sequence

from caredio.config import LoopSettings
from caredio.graph.state import Version

FINALIZE = "finalize"
REFINE_QUESTION = "refine_question"
REFINE_RESPONSE = "refine_response"
STEP_MARGIN = 2


def decide(versions: Sequence[Version], loop: LoopSettings) -> tuple[str, str]:
    """Return ``(next node, reason)`` after the latest version was scored.

    Stops when both thresholds are met, when the objective improved by less than ``epsilon``
    over the last ``patience`` rounds, or at ``max_rounds`` — but never before ``min_rounds``.
    Refinement alternates response and question steps, starting with the response.
    """
    latest = versions[-1]
    rounds = latest["round"]
    if rounds >= loop.min_rounds:
        if latest["representativeness"] >= loop.r_threshold and latest["distinctiveness"] >= loop.d_threshold:
            return FINALIZE, "thresholds"
        if rounds >= loop.max_rounds:
            return FINALIZE, "max_rounds"
        if len(versions) > loop.patience:
            before = max(v["objective"] for v in versions[: -loop.patience])
            recent = max(v["objective"] for v in versions[-loop.patience :])
            if recent - before < loop.epsilon:
                return FINALIZE, "plateau"
    next_step = REFINE_RESPONSE if rounds % 2 == 0 else REFINE_QUESTION
    return next_step, "continue"


def step_limit(loop: LoopSettings) -> int:
    """LangGraph's recursion limit for one sample's graph: every step it can take, and a margin.

    LangGraph's input step + draft + (max_rounds + 1) critiques + max_rounds refinements +
    finalize = 2 * max_rounds + 4 (measured: one less stops the longest loop one step short).
    """
    return 2 * loop.max_rounds + 4 + STEP_MARGIN


def best_version(versions: Sequence[Version]) -> Version:
    """The highest objective; ties go to the earlier version (fewer edits, same value)."""
    return max(enumerate(versions), key=lambda pair: (pair[1]["objective"], -pair[0]))[1]
