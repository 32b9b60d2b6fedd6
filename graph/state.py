"""Graph state. One module, so every node reads the same definitions."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class Version(TypedDict):
    """One scored version of a sample: a line of trajectories.jsonl, kept whole in the
    checkpoint so a sample continued from it can write any line a dead process never wrote."""

    sample_id: str
    round: int  # refinement rounds behind this version; 0 = the expert's first draft
    step: str  # what produced it: "initial", "question" or "response"
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
