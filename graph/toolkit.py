"""What a sample's graph is built with, grouped by what it is for.

The graph factories take one :class:`Toolkit` and nothing is compiled or connected at import
time: the run (or a Ray worker, or a test) builds the agents, memory, scorer and records and
hands them in. Nodes read the group they need: the team, the evidence, where outputs go, or
the recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from caredio.agents.base import TurnContext
from caredio.agents.contrast_critic import ContrastCritic
from caredio.agents.culture_expert import CultureExpert
from caredio.agents.refiner import Refiner
from caredio.config.settings import LoopSettings
from caredio.memory.judge import Judge, MemoryPart
from caredio.memory.questions import QuestionBook
from caredio.memory.scoring import Scorer
from caredio.memory.store import CulturalMemory
from caredio.rundir.formats import TraceLine
from caredio.rundir.recorder import RecordWriter
from caredio.tracing.events import OnEvent, ignore
from caredio.tracing.sinks import TraceSink


@dataclass(frozen=True)
class Team:
    """The three agents."""

    expert: CultureExpert
    critic: ContrastCritic
    refiner: Refiner


@dataclass(frozen=True)
class Evidence:
    """What grounds and scores a sample."""

    memory: CulturalMemory | MemoryPart  # what the agents are grounded in (the loop's part)
    scorer: Scorer
    questions: QuestionBook  # questions already asked, so a new sample asks something else
    judge: Judge | None = None  # the held-out judge; its scores never reach an agent


@dataclass(frozen=True)
class Outputs:
    """Where a sample's records go: versions and dataset line, agent turns, progress."""

    recorder: RecordWriter  # the run's recorder, or a Ray worker's forwarder to the driver
    sink: TraceSink
    on_event: OnEvent = ignore


@dataclass(frozen=True)
class Recipe:
    """How a sample is made and written."""

    loop: LoopSettings
    strategy: str = "loop"  # loop, one-shot or best-of-n (graph/strategies.py)
    best_of_n: int | None = None  # answers per best-of-n sample; None = the rule for n
    system_prompt: str | None = None  # added to every dataset line


@dataclass(frozen=True)
class Toolkit:
    team: Team
    evidence: Evidence
    outputs: Outputs
    recipe: Recipe
    shared_checkpoints: bool = False  # one store for many runs: thread ids carry the run id


class _TurnEvents:
    """Forwards each finished agent turn to the run's event callback (for progress displays)."""

    def __init__(self, sink: TraceSink, on_event: OnEvent) -> None:
        self.sink = sink
        self.on_event = on_event

    def emit(self, record: TraceLine) -> None:
        self.sink.emit(record)
        line: dict[str, Any] = dict(record)
        self.on_event("turn", {key: line.get(key) for key in (
            "sample_id", "round", "agent", "step", "input_tokens", "output_tokens", "latency_ms", "queue_ms",
            "request_ms", "retries", "error")})


def turn_context(toolkit: Toolkit, run_id: str, sample_id: str, round_: int) -> TurnContext:
    """Where an agent turn belongs, and where its record and progress go."""
    outputs = toolkit.outputs
    return TurnContext(run_id=run_id, sample_id=sample_id, round=round_,
                       sink=_TurnEvents(outputs.sink, outputs.on_event),
                       on_start=lambda turn: outputs.on_event("turn_started", turn))
