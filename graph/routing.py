"""The convergence router: refine the question, refine the response, or stop."""

from __future__ import annotations

from collections.abc import Sequence

from caredio.config.settings import LoopSettings
from caredio.rundir.formats import Version

FINALIZE = "finalize"
REFINE_QUESTION = "refine_question"
REFINE_RESPONSE = "refine_response"
STEP_MARGIN = 2


def decide(versions: Sequence[Version], loop: LoopSettings) -> tuple[str, str]:
    """Return ``(next node, reason)`` after the latest version was scored.

    Stops when both thresholds are met (by a version that was not rejected), when the
    objective of the versions kept improved by less than ``epsilon`` over the last ``patience``
    rounds, or at ``max_rounds`` — but never before ``min_rounds``. Refinement alternates
    response and question steps, starting with ``loop.first_step``.
    """
    latest = versions[-1]
    rounds = latest["round"]
    if rounds >= loop.min_rounds:
        if (not latest.get("rejected") and latest["representativeness"] >= loop.r_threshold
                and latest["distinctiveness"] >= loop.d_threshold):
            return FINALIZE, "thresholds"
        if rounds >= loop.max_rounds:
            return FINALIZE, "max_rounds"
        if len(versions) > loop.patience:
            values = [-1.0 if v.get("rejected") else v["objective"] for v in versions]
            before = max(values[: -loop.patience])
            recent = max(values[-loop.patience :])
            if recent - before < loop.epsilon:
                return FINALIZE, "plateau"
    return next_refinement(rounds, loop), "continue"


def next_refinement(rounds: int, loop: LoopSettings) -> str:
    """The step of refinement round ``rounds + 1``: ``first_step``, then alternating."""
    first, second = ((REFINE_RESPONSE, REFINE_QUESTION) if loop.first_step == "response"
                     else (REFINE_QUESTION, REFINE_RESPONSE))
    return first if rounds % 2 == 0 else second


def step_limit(loop: LoopSettings) -> int:
    """LangGraph's recursion limit for one sample's graph: every step it can take, and a margin.

    LangGraph's input step + draft + (max_rounds + 1) critiques + max_rounds refinements +
    finalize = 2 * max_rounds + 4 (measured: one less stops the longest loop one step short).
    """
    return 2 * loop.max_rounds + 4 + STEP_MARGIN


def best_version(versions: Sequence[Version]) -> Version:
    """The highest objective among versions not rejected; ties go to the earlier version
    (fewer edits, same value)."""
    kept = [v for v in versions if not v.get("rejected")] or list(versions)
    return max(enumerate(kept), key=lambda pair: (pair[1]["objective"], -pair[0]))[1]


def base_version(versions: Sequence[Version], loop: LoopSettings) -> Version:
    """The version the next refinement rewrites: the latest kept one, or the best so far."""
    kept = [v for v in versions if not v.get("rejected")] or list(versions)
    return best_version(kept) if loop.refine_from == "best" else kept[-1]


def rejected(representativeness: float, base: Version, loop: LoopSettings) -> bool:
    """Whether a refinement of ``base`` lost more R than ``loop.max_r_drop`` allows."""
    return (loop.max_r_drop is not None
            and representativeness < base["representativeness"] - loop.max_r_drop)
