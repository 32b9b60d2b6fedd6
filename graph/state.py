"""Graph state. One module, so every node reads the same definitions; the lines it shares with
the run directory (a plan entry, a version) are typed where the files are
(:mod:`caredio.rundir.formats`)."""

from __future__ import annotations

import operator
from typing import Annotated, Any

from typing_extensions import TypedDict

from caredio.rundir.formats import PlanEntry, Version


class SampleState(PlanEntry, total=False):
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
    plan: list[PlanEntry]
    results: Annotated[list[dict[str, Any]], operator.add]
    summary: dict[str, Any]
