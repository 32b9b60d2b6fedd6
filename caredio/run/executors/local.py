"""The local executor: a sample's optimization run by the per-sample graph (of the run's
strategy: the loop, or a baseline, graph/strategies.py) in this process.

Each sample runs under its own checkpoint thread (its sample id, or ``run/sample`` in a store
shared by runs), in a fresh context so it is not a namespaced child of the run graph; the
run's callbacks go along explicitly. Ray workers (caredio/run/executors/ray_worker.py) run samples with
this same executor, their records forwarded to the driver.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

from langchain_core.runnables import RunnableConfig

from caredio.errors import EndpointDown, EndpointError, ModelOutputError
from caredio.graph.checkpoints import thread_id
from caredio.graph.nodes import judged_of
from caredio.graph.strategies import build_strategy_graph, sample_step_limit
from caredio.graph.toolkit import Toolkit
from caredio.rundir.formats import PlanEntry, dataset_line

log = logging.getLogger(__name__)


class LocalExecutor:
    """Optimizes samples with the per-sample graph, in this process."""

    def __init__(self, toolkit: Toolkit, checkpointer: Any) -> None:
        self.toolkit = toolkit
        self.graph = build_strategy_graph(toolkit, checkpointer)

    async def optimize(self, spec: PlanEntry, callbacks: Any = None,
                       context: contextvars.Context | None = None) -> dict[str, Any]:
        task = asyncio.get_running_loop().create_task(
            _optimize(self.graph, spec, self.toolkit, callbacks),
            context=context or contextvars.Context())
        return await task


async def _optimize(sample_graph: Any, spec: PlanEntry, toolkit: Toolkit,
                    callbacks: Any = None) -> dict[str, Any]:
    """One sample, isolated: its endpoint or output failure marks it failed, nothing more.

    EndpointDown (the endpoint is gone for every sample) propagates and stops the run;
    so does anything else, which is a bug.
    """
    sample_id, culture = spec["sample_id"], spec["culture"]
    config: RunnableConfig = {
        "configurable": {"thread_id": thread_id(spec["run_id"], sample_id,
                                                toolkit.shared_checkpoints)},
        "recursion_limit": sample_step_limit(toolkit, spec),
        "callbacks": callbacks, "run_name": f"optimize_sample:{sample_id}",
        "metadata": {"caredio_run_id": spec["run_id"], "caredio_sample_id": sample_id,
                     "caredio_culture": culture, "caredio_topic": spec["topic"]},
    }
    snapshot = await sample_graph.aget_state(config)
    values = snapshot.values or {}
    # The checkpoint's versions are written again (keyed: never twice, a no-op here as a rule):
    # a Ray worker may have checkpointed a step whose line never reached the driver.
    for version in values.get("versions", []):
        toolkit.outputs.recorder.write_version(version)
    if values.get("done"):
        # Finished in its checkpoint. The dataset line is written again (keyed: never twice):
        # a worker killed between its last checkpoint and the driver's write must not lose it.
        # The line finalize wrote: the same strategy, the best version's judge scores.
        best = values["best"]
        toolkit.outputs.recorder.write_sample(dataset_line(
            spec, values["versions"], best, values.get("stop_reason", ""), toolkit.recipe.system_prompt,
            toolkit.recipe.strategy, judged_of(best)))
        toolkit.outputs.on_event("sample_skipped", {"sample_id": sample_id, "culture": culture,
                                            "best": values["best"], "first": values["versions"][0]})
        return _result(spec, values)
    # No checkpoint: start from the spec. A checkpoint: continue where it stopped (None input)
    # — also after a failure, whose failed step is the one retried.
    start = None if snapshot.next else dict(spec)
    if snapshot.next and "draft" not in snapshot.next:  # draft announces the others itself
        toolkit.outputs.on_event("sample_started", {"sample_id": sample_id, "culture": culture,
                                            "resumed": True})
    try:
        final = await sample_graph.ainvoke(start, config)
    except EndpointDown:
        raise
    except (EndpointError, ModelOutputError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.warning("sample %s failed: %s", sample_id, error)
        toolkit.outputs.on_event("sample_failed", {"sample_id": sample_id, "culture": culture,
                                           "error": error})
        return failed_result(spec, error)
    return _result(spec, final)


def failed_result(spec: PlanEntry, error: str) -> dict[str, Any]:
    return {"sample_id": spec["sample_id"], "culture": spec["culture"], "topic": spec["topic"],
            "status": "failed", "error": error}


def _result(spec: PlanEntry, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "sample_id": spec["sample_id"], "culture": spec["culture"], "topic": spec["topic"],
        "status": "completed", "first": values["versions"][0], "best": values["best"],
        "rounds": values["versions"][-1]["round"], "stop_reason": values.get("stop_reason", ""),
    }
