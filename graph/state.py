"""Graph state. One module, so every node reads the same definitions."""

from __future__ import annotations

import operator
from typing import Annotated, Any, NotRequired, TypedDict


class Version(TypedDict):
    """One scored version of a sample: a line of trajectories.jsonl, kept whole in the
    checkpoint so a sample continued from it can write any line a dead process never wrote."""

    sample_id: str
    round: int  # refinement rounds behind this version; 0 = the expert's first draft
    # What produced it: "initial", "question" or "response" (loop); "candidate" (best-of-n,
    # where round i is the i-th answer to the same question)
    step: str
    question: str
    response: str
    representativeness: float
    distinctiveness: float
    objective: float
    attribution: dict[str, float]
    critique: str
    culture: str
    topic: str
    contrast: list[str]
    contrast_answers: dict[str, str]
    grounding_ids: list[str]  # the knowledge items shown to the agents
    score_flags: list[str]
    missing_core: NotRequired[list[str]]  # what the critique found missing (for a later refinement)
    # A refinement whose R fell more than loop.max_r_drop below the version it rewrote: kept in
    # the trajectory, never the best, never the start of another refinement.
    rejected: NotRequired[bool]
    # The held-out judge's scores (judge.split): recorded, never shown to an agent or routed on.
    judge_representativeness: NotRequired[float]
    judge_distinctiveness: NotRequired[float]
    judge_objective: NotRequired[float]


class SampleSpec(TypedDict):
    """A planned sample: what the run graph sends to each optimization."""

    sample_id: str
    run_id: str
    culture: str
    topic: str
    topic_name: str
    topic_description: str
    contrast: list[str]
    index: int


class SampleState(SampleSpec, total=False):
    knowledge: list[str]
    knowledge_ids: list[str]  # the items shown to the agents, held out of the scoring
    question: str
    response: str
    round: int
    step: str
    contrast_answers: dict[str, str]
    contrast_question: str  # the question the contrast answers were written for
    contrast_cache: dict[str, dict[str, str]]  # question -> its contrast answers
    critique: str
    missing_core: list[str]
    versions: Annotated[list[Version], operator.add]
    next_step: str
    stop_reason: str
    best: Version
    done: bool


class RunState(TypedDict, total=False):
    plan: list[SampleSpec]
    results: Annotated[list[dict[str, Any]], operator.add]
    summary: dict[str, Any]
