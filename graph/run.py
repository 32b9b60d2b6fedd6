"""The run graph: elicit -> plan -> fan out one optimization per sample (``Send``) -> collect ->
select.

Wiring only. What each step does is the run's (:class:`RunSteps`, from
caredio/run/execution.py): ask the culture expert for knowledge of the cultures memory lacks,
make the plan (or read the one a resumed run wrote; auto contrast ranks the elicited knowledge
too, so planning waits for elicitation), and at the end select the run's best samples and
accept them into memory. Where a sample is optimized is the executor's business (the executor
seam, :class:`SampleExecutor`): the local one runs the per-sample graph in this process, the
Ray one on Ray workers (caredio/run/executors/). Either way each sample has its own checkpoint
thread, so a resumed run skips finished samples and continues the others from their last
completed step.
"""

from __future__ import annotations

from typing import Any, Protocol

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from caredio.graph.state import RunState
from caredio.rundir.formats import PlanEntry
from caredio.tracing.events import OnEvent


class SampleExecutor(Protocol):
    """Optimizes one planned sample somewhere; returns its result (completed or failed)."""

    async def optimize(self, spec: PlanEntry, callbacks: Any = None) -> dict[str, Any]: ...


class RunSteps(Protocol):
    """What the run graph's steps do, supplied by the run."""

    async def elicit(self) -> None:
        """Knowledge of the cultures memory lacks, asked of the culture expert."""

    async def plan(self) -> list[PlanEntry]:
        """The samples to optimize: planned now and written once, or as a resumed run wrote them."""

    async def select(self) -> None:
        """Select among the run's dataset lines and accept the chosen into memory."""


def build_run_graph(steps: RunSteps, executor: SampleExecutor, on_event: OnEvent, max_rounds: int) -> Any:
    """Compile the run graph (itself not checkpointed: the samples are). ``max_rounds`` goes
    into the "planned" event, for the live display's share of work per sample."""

    async def elicit(state: RunState) -> dict[str, Any]:
        await steps.elicit()
        return {}

    async def plan(state: RunState) -> dict[str, Any]:
        specs = await steps.plan()
        per_culture: dict[str, int] = {}
        for spec in specs:
            per_culture[spec["culture"]] = per_culture.get(spec["culture"], 0) + 1
        on_event("planned", {"planned": len(specs), "cultures": per_culture, "max_rounds": max_rounds})
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

    async def select(state: RunState) -> dict[str, Any]:
        await steps.select()
        return {}

    builder = StateGraph(RunState)
    builder.add_node("elicit", elicit)
    builder.add_node("plan", plan)
    builder.add_node("optimize_sample", optimize_sample)  # type: ignore[arg-type]
    builder.add_node("collect", collect)
    builder.add_node("select", select)
    builder.add_edge(START, "elicit")
    builder.add_edge("elicit", "plan")
    builder.add_conditional_edges("plan", fan_out, ["optimize_sample"])
    builder.add_edge("optimize_sample", "collect")
    builder.add_edge("collect", "select")
    builder.add_edge("select", END)
    return builder.compile(name="caredio_run")
