"""The run graph: plan -> fan out one optimization per sample (``Send``) -> collect -> select.

Where a sample is optimized is the executor's business (the executor seam): the local one
runs the per-sample graph in this process (graph/local.py), the Ray one on Ray workers
(caredio/ray_executor.py). Either way each sample has its own checkpoint thread, so a
resumed run replans (the plan is written once), skips finished samples and continues the
others from their last completed step. The select step accepts the run's best samples into
memory (``selected.jsonl``) once every sample is done.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from caredio.graph.state import RunState
from caredio.rundir.formats import PlanEntry

log = logging.getLogger(__name__)
Event = Callable[[str, dict[str, Any]], None]


class SampleExecutor(Protocol):
    """Optimizes one planned sample somewhere; returns its result (completed or failed)."""

    async def optimize(self, spec: PlanEntry, callbacks: Any = None) -> dict[str, Any]: ...


def build_run_graph(
    executor: SampleExecutor,
    planner: Callable[[], list[PlanEntry]],
    select: Callable[[], Awaitable[None]],
    on_event: Event,
    max_rounds: int,
) -> Any:
    """Compile the run graph (itself not checkpointed: the samples are). ``max_rounds`` goes
    into the "planned" event, for the live display's share of work per sample."""

    async def plan(state: RunState) -> dict[str, Any]:
        specs = planner()
        per_culture: dict[str, int] = {}
        for spec in specs:
            per_culture[spec["culture"]] = per_culture.get(spec["culture"], 0) + 1
        on_event("planned", {"planned": len(specs), "cultures": per_culture,
                             "max_rounds": max_rounds})
        return {"plan": specs}

    def fan_out(state: RunState) -> list[Send]:
        return [Send("optimize_sample", spec) for spec in state["plan"]]

    async def optimize_sample(spec: PlanEntry, config: RunnableConfig) -> dict[str, Any]:
        # The run's callbacks and tracers go along, so they follow every sample and agent call.
        return {"results": [await executor.optimize(spec, config.get("callbacks"))]}

    async def collect(state: RunState) -> dict[str, Any]:
        results = state.get("results", [])
        summary = {
            "planned": len(state["plan"]),
            "completed": sum(r["status"] == "completed" for r in results),
            "failed": sum(r["status"] == "failed" for r in results),
        }
        return {"summary": summary}

    async def select_step(state: RunState) -> dict[str, Any]:
        await select()
        return {}

    builder = StateGraph(RunState)
    builder.add_node("plan", plan)
    builder.add_node("optimize_sample", optimize_sample)  # type: ignore[arg-type]
    builder.add_node("collect", collect)
    builder.add_node("select", select_step)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["optimize_sample"])
    builder.add_edge("optimize_sample", "collect")
    builder.add_edge("collect", "select")
    builder.add_edge("select", END)
    return builder.compile(name="caredio_run")
