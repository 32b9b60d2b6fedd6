"""Executing a job: run.json's life cycle around the endpoint and the run graph.

The run graph (graph/run.py) elicits, plans, fans the samples out to an executor (this
process, or Ray workers) and selects at the end; this module supplies those steps
(:class:`JobSteps`), opens the endpoint and the executor, and records how the run ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from caredio.agents.base import TurnContext
from caredio.config.settings import ROLES, Settings
from caredio.config.urls import public_url
from caredio.errors import EndpointDown, RunStopped, ServiceLost, WriteFailed
from caredio.graph.checkpoints import open_checkpointer
from caredio.graph.run import SampleExecutor, build_run_graph
from caredio.graph.toolkit import Evidence, Outputs, Team, Toolkit
from caredio.llm.cache import cache_path
from caredio.llm.endpoint import endpoint, open_run_cache
from caredio.memory.questions import QuestionBook
from caredio.run.agent_factory import build_agents, recipe, requests_at_once, samples_in_flight
from caredio.run.elicitation import elicit_missing
from caredio.run.executors.local import LocalExecutor
from caredio.run.job import Job, ensure_plan
from caredio.run.selection import accept_into_memory
from caredio.run.signals import terminate_as_interrupt
from caredio.rundir.files import read_jsonl
from caredio.rundir.formats import CHECKPOINTS, DATASET, PLAN, TRAJECTORIES, PlanEntry, RunRecord, Status
from caredio.rundir.recorder import RunRecorder, templates_hash
from caredio.threads import configure_threads
from caredio.tracing.events import OnEvent, guarded
from caredio.tracing.otel import SpanSink, otlp_provider
from caredio.tracing.sinks import LoggingTraceSink, MultiSink, TraceSink

log = logging.getLogger(__name__)

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


async def execute(job: Job, run_dir: Path, recorder: RunRecorder, on_event: OnEvent,
                  callbacks: list[Any] | None = None, tracer_provider: Any = None,
                  ) -> RunRecord:
    """Run (or continue) the graph for the job; returns the final run.json record.

    Each sample's failure is recorded (run.json ``failures``, its trace line) and the run
    goes on; the status is "failed" only past ``max_failed_share``. An endpoint that is down
    for good stops the run at once (EndpointError, with the resume command). So does a Chroma
    server that stops answering or a file of the run that cannot be written (a full disk):
    RunStopped, one line naming it with the resume command, and run.json says "interrupted"
    (its last write has space held for it, see RunRecorder.hold_space).

    ``callbacks`` (LangChain callback handlers: tracers such as LangSmith or Langfuse) follow
    the run into every sample graph and agent call (local executor); ``tracer_provider``
    (OpenTelemetry) receives every agent turn as a span (else ``telemetry.otlp_endpoint``).
    """
    settings = job.settings
    run_id = run_dir.name
    started = time.time()
    recorder.write_run(run_id=run_id, status="running", pid=os.getpid(), started_at=started,
                       error=None, config_hash=settings.config_hash(),
                       templates_hash=templates_hash(job.templates),
                       template_hashes={n: t.hash for n, t in job.templates.items()},
                       threads=configure_threads(settings.threads), executor=settings.executor,
                       embeddings={"backend": job.memory.embedder.backend,
                                   "runtime": getattr(job.memory.embedder, "runtime", None)},
                       **job.strategy_record())
    status: Status = "failed"
    error: str | None = None
    summary: dict[str, Any] = {}
    if tracer_provider is None and settings.telemetry.otlp_endpoint:
        tracer_provider = otlp_provider(settings.telemetry.otlp_endpoint,
                                        settings.telemetry.service_name)
    spans = SpanSink(tracer_provider, run_id) if tracer_provider is not None else None
    events = guarded(on_event)
    stopped: str | None = None  # why the run stopped part-way (a lost service, a full disk)
    cause: BaseException | None = None
    unrecorded: WriteFailed | None = None  # run.json's last write failed too
    try:
        recorder.hold_space()
        with terminate_as_interrupt():
            async with endpoint(settings) as (base_url, model, liveness), \
                    contextlib.AsyncExitStack() as resources:
                recorder.write_run(endpoint=public_url(base_url), model=model,
                                   embedded_model=settings.llm.base_url is None,
                                   requests_at_once=requests_at_once(settings),
                                   samples_in_flight=samples_in_flight(settings))
                events("endpoint", {"endpoint": public_url(base_url), "model": model,
                                    "requests_at_once": requests_at_once(settings)})
                cache = open_run_cache(settings, base_url)
                if cache is not None:
                    resources.callback(cache.close)
                agents = build_agents(settings, job.templates, base_url, model, liveness, cache=cache)
                sink = MultiSink(recorder, LoggingTraceSink(), *([spans] if spans else []))
                questions = QuestionBook(job.memory).seed(read_jsonl(run_dir / TRAJECTORIES))
                async with open_executor(job, run_dir, recorder, sink, events, agents,
                                         questions, (base_url, model)) as executor:
                    graph = build_run_graph(JobSteps(job, run_dir, recorder, agents, sink),
                                            InFlight(executor, samples_in_flight(settings)), events,
                                            settings.loop.max_rounds)
                    final = await graph.ainvoke(
                        {}, {"callbacks": callbacks, "run_name": f"caredio_run:{run_id}"})
        summary = final["summary"]
        failures = [r for r in final["results"] if r["status"] == "failed"]
        summary["failures"] = [{k: r[k] for k in ("sample_id", "culture", "error")}
                               for r in failures]
        share = summary["failed"] / max(summary["planned"], 1)
        status = "completed" if share <= settings.max_failed_share else "failed"
        if status == "failed":
            error = (f"{summary['failed']} of {summary['planned']} samples failed, more than "
                     f"max_failed_share={settings.max_failed_share}")
    except (KeyboardInterrupt, asyncio.CancelledError):
        status = "interrupted"
        raise
    except EndpointDown as exc:
        error = f"{type(exc).__name__}: {exc}"
        done = len(read_jsonl(run_dir / DATASET))
        raise EndpointDown(f"{exc}; the run stopped with {done} samples finished; continue it "
                           f"with `caredio resume {run_dir}`") from None
    except Exception as exc:
        stopped = stopped_by(exc, run_dir, settings)
        if stopped is None:  # a bug: raised as it is
            error = f"{type(exc).__name__}: {exc}"
            raise
        # Cut off from outside, like Ctrl-C: nothing is wrong with the samples, resume goes on.
        status, error, cause = "interrupted", stopped, exc
    finally:
        if spans is not None:
            spans.close(status)
        recorder.free_space()  # the space held for this last write
        try:
            record = recorder.write_run(
                status=status, error=error, finished_at=time.time(),
                wall_seconds=round(time.time() - started, 1),
                tokens={role: recorder.tokens[role].copy() for role in ROLES},
                retries=recorder.retries, **summary,
                cache=recorder.cache_record(_cache_file(settings)),
            )
        except WriteFailed as exc:
            if stopped is None:
                raise
            unrecorded = exc  # said in the stop's one line below; resume does not need run.json
    if stopped is not None:
        raise RunStopped(stop_message(stopped, cause, run_dir, unrecorded)) from cause
    return record


def _cache_file(settings: Settings) -> str | None:
    path = cache_path(settings.llm.cache)
    return None if path is None else str(path)


def stopped_by(exc: BaseException, run_dir: Path, settings: Settings) -> str | None:
    """Why the run stopped part-way, in words naming the service or file, when the cause is
    outside the run and every later step would meet it too; None for anything else."""
    if isinstance(exc, (ServiceLost, WriteFailed)):
        return str(exc)
    if (isinstance(exc, sqlite3.OperationalError) and not settings.checkpoint_url
            and exc.sqlite_errorcode == sqlite3.SQLITE_FULL):  # the run's own checkpoint file
        return f"{exc} writing {run_dir / CHECKPOINTS}"
    return None


def stop_message(reason: str, cause: BaseException | None, run_dir: Path,
                 unrecorded: WriteFailed | None) -> str:
    """One line: what stopped the run, what is kept, what to do, and the resume command."""
    done = len(read_jsonl(run_dir / DATASET))
    planned = len(read_jsonl(run_dir / PLAN))
    kept = f"{done} of {planned}" if planned else f"{done}"
    if isinstance(cause, ServiceLost):
        then = "once the server answers again, continue it"
    elif isinstance(cause, sqlite3.Error) or getattr(cause, "errno", None) in DISK_FULL:
        then = "make room (or move the directory to a roomier disk), then continue it"
    else:  # read-only, permissions, I/O error: nothing a full disk's remedy would fix
        then = "once the file can be written again, continue it"
    unsaid = ""
    if unrecorded is not None:
        why = (unrecorded.strerror or "cannot write").lower()
        unsaid = (f"run.json could not be updated either ({why}) "
                  "and still says \"running\", which resume does not need; ")
    return (f"{reason}; the run stopped with {kept} samples finished, on disk in {run_dir}; "
            f"{unsaid}{then} with `caredio resume {run_dir}`")


class JobSteps:
    """The run graph's steps for this job (graph/run.py): elicit, plan, select."""

    def __init__(self, job: Job, run_dir: Path, recorder: RunRecorder, agents: Team, sink: TraceSink) -> None:
        self.job, self.run_dir, self.recorder = job, run_dir, recorder
        self.agents, self.sink = agents, sink

    async def elicit(self) -> None:
        if self.job.missing:
            await elicit_missing(self.job, self.agents.expert, TurnContext(self.run_dir.name, "_memory", 0, self.sink))

    async def plan(self) -> list[PlanEntry]:
        plan = await asyncio.to_thread(ensure_plan, self.job, self.run_dir, self.recorder)
        self.recorder.write_run(**self.job.plan_record(plan))
        return plan

    async def select(self) -> None:
        await asyncio.to_thread(accept_into_memory, self.job, self.run_dir)


class InFlight:
    """The run's executor, with at most ``limit`` samples in its hands at once.

    The run graph's limit, held here rather than by LangGraph's ``max_concurrency``: that one
    wraps each waiting sample's coroutine in another that waits for a slot, and when a sample
    stops the run (a lost service, a full disk) the waiting ones are cancelled before their
    coroutine ever ran, which Python reports as "RuntimeWarning: coroutine 'arun_with_retry'
    was never awaited" on standard error. Here every sample's node is running when it waits,
    so a cancel simply ends it. (A tracer's ``optimize_sample`` span so includes the wait for
    a slot; the sample's own graph, ``optimize_sample:<id>``, starts once it has one.)
    """

    def __init__(self, executor: SampleExecutor, limit: int) -> None:
        self.executor = executor
        self.slots = asyncio.Semaphore(limit)

    async def optimize(self, spec: PlanEntry, callbacks: Any = None) -> dict[str, Any]:
        async with self.slots:
            return await self.executor.optimize(spec, callbacks)


@contextlib.asynccontextmanager
async def open_executor(job: Job, run_dir: Path, recorder: RunRecorder, sink: TraceSink,
                        on_event: OnEvent, agents: Team, questions: QuestionBook,
                        endpoint_model: tuple[str, str]) -> AsyncIterator[SampleExecutor]:
    """The run's executor: the per-sample graph here (default), or Ray workers."""
    settings = job.settings
    if settings.executor == "ray":
        from caredio.run.executors.ray import RayExecutor

        async with RayExecutor.started(job, recorder, sink, on_event, questions,
                                       *endpoint_model) as executor:
            yield executor
        return
    assert job.knowledge is not None
    toolkit = Toolkit(agents, Evidence(job.knowledge, job.scorer, questions, job.judge),
                      Outputs(recorder, sink, on_event), recipe(settings),
                      shared_checkpoints=bool(settings.checkpoint_url))
    async with open_checkpointer(settings.checkpoint_url, run_dir) as saver:
        yield LocalExecutor(toolkit, saver)
