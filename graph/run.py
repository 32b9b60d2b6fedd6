"""The run graph: plan -> fan out one optimization per sample (``Send``) -> collect.

Each sample is optimized by the per-sample graph under its own checkpoint thread (its sample
id) in the run's SQLite checkpointer. A resumed run replans (the plan is a pure function of
the config), skips samples whose thread is finished, and continues the others from their
last completed step.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from caredio.checkpoints import thread_id
from caredio.errors import EndpointDown, EndpointError, ModelOutputError
from caredio.graph.routing import step_limit
from caredio.graph.sample import Toolkit, build_sample_graph
from caredio.graph.state import RunState, SampleSpec

log = logging.getLogger(__name__)


def build_run_graph(
    toolkit: Toolkit,
    planner: Callable[[], list[SampleSpec]],
    checkpointer: Any,
) -> Any:
    """Compile the run graph; ``checkpointer`` persists every sample's state after every step."""
    sample_graph = build_sample_graph(toolkit, checkpointer)

    async def plan(state: RunState) -> dict[str, Any]:
        specs = planner()
        toolkit.on_event("planned", {"planned": len(specs)})
        return {"plan": specs}

    def fan_out(state: RunState) -> list[Send]:
        return [Send("optimize_sample", spec) for spec in state["plan"]]

    async def optimize_sample(spec: SampleSpec, config: RunnableConfig) -> dict[str, Any]:
        # A fresh context: the sample graph keeps its own checkpoint thread instead of
        # becoming a namespaced child of this (uncheckpointed) run graph. The run's callbacks
        # and tracers go along explicitly, so they follow every sample and agent call.
        task = asyncio.get_running_loop().create_task(
            _optimize(sample_graph, spec, toolkit, config.get("callbacks")),
            context=contextvars.Context(),
        )
        return {"results": [await task]}

    async def collect(state: RunState) -> dict[str, Any]:
        results = state.get("results", [])
        summary = {
            "planned": len(state["plan"]),
            "completed": sum(r["status"] == "completed" for r in results),
            "failed": sum(r["status"] == "failed" for r in results),
        }
        return {"summary": summary}

    builder = StateGraph(RunState)
    builder.add_node("plan", plan)
    builder.add_node("optimize_sample", optimize_sample)  # type: ignore[arg-type]
    builder.add_node("collect", collect)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["optimize_sample"])
    builder.add_edge("optimize_sample", "collect")
    builder.add_edge("collect", END)
    return builder.compile(name="caredio_run")


async def _optimize(sample_graph: Any, spec: SampleSpec, toolkit: Toolkit,
                    callbacks: Any = None) -> dict[str, Any]:
    """One sample, isolated: its endpoint or output failure marks it failed, nothing more.

    EndpointDown (the endpoint is gone for every sample) propagates and stops the run;
    so does anything else, which is a bug.
    """
    sample_id, culture = spec["sample_id"], spec["culture"]
    config: RunnableConfig = {
        "configurable": {"thread_id": thread_id(spec["run_id"], sample_id,
                                                toolkit.shared_checkpoints)},
        "recursion_limit": step_limit(toolkit.loop),
        "callbacks": callbacks, "run_name": f"optimize_sample:{sample_id}",
        "metadata": {"caredio_run_id": spec["run_id"], "caredio_sample_id": sample_id,
                     "caredio_culture": culture, "caredio_topic": spec["topic"]},
    }
    snapshot = await sample_graph.aget_state(config)
    values = snapshot.values or {}
    if values.get("done"):
        toolkit.on_event("sample_skipped", {"sample_id": sample_id, "culture": culture,
                                            "best": values["best"], "first": values["versions"][0]})
        return _result(spec, values)
    # No checkpoint: start from the spec. A checkpoint: continue where it stopped (None input)
    # — also after a failure, whose failed step is the one retried.
    start = None if snapshot.next else dict(spec)
    if snapshot.next and "draft" not in snapshot.next:  # draft announces the others itself
        toolkit.on_event("sample_started", {"sample_id": sample_id, "culture": culture,
                                            "resumed": True})
    try:
        final = await sample_graph.ainvoke(start, config)
    except EndpointDown:
        raise
    except (EndpointError, ModelOutputError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.warning("sample %s failed: %s", sample_id, error)
        toolkit.on_event("sample_failed", {"sample_id": sample_id, "culture": culture,
                                           "error": error})
        return {"sample_id": sample_id, "culture": culture, "topic": spec["topic"],
                "status": "failed", "error": error}
    return _result(spec, final)


def _result(spec: SampleSpec, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "sample_id": spec["sample_id"], "culture": spec["culture"], "topic": spec["topic"],
        "status": "completed", "first": values["versions"][0], "best": values["best"],
        "rounds": values["versions"][-1]["round"], "stop_reason": values.get("stop_reason", ""),
    }
