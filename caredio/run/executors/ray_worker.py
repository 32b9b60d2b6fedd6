"""A Ray sample worker: runs the per-sample graph for the samples the driver sends it.

Each worker is an asyncio Ray actor with its own LLM clients, memory client (a Chroma server,
or its own ephemeral copy of the starter pack), scorer and Postgres checkpointer. It writes no
file: every record a sample produces (versions, dataset line, agent turns, progress events)
is streamed back to the driver, the only writer of the run directory. Request permits and
the drafting turn of a culture and topic come from the run's coordinator actor, in the name
of the sample attempt (the holder), so the driver can take them back if this worker dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

from caredio.config.settings import Settings
from caredio.graph.toolkit import Evidence, Outputs, Toolkit
from caredio.llm.endpoint import open_run_cache
from caredio.llm.limits import EndpointHealth
from caredio.llm.liveness import Liveness
from caredio.memory.embeddings import Embedder
from caredio.memory.questions import QuestionBook
from caredio.prompts import PromptTemplate
from caredio.run.agent_factory import build_agents, recipe
from caredio.run.executors.coordination import HolderReleased
from caredio.run.executors.local import LocalExecutor
from caredio.run.job import EPHEMERAL, load_starter_pack, loop_parts, open_memory
from caredio.rundir.formats import DatasetLine, PlanEntry, TraceLine, Version
from caredio.threads import configure_threads

log = logging.getLogger(__name__)

# The sample attempt a coroutine works for, and where its records go: set per sample.
HOLDER: contextvars.ContextVar[str] = contextvars.ContextVar("caredio_holder")
OUTBOX: contextvars.ContextVar[asyncio.Queue[tuple[str, Any]]] = contextvars.ContextVar(
    "caredio_outbox")


class RemoteLimiter:
    """The run's global request limiter, seen from a worker (permits from the coordinator)."""

    def __init__(self, coordinator: Any, down_after: float) -> None:
        self.coordinator = coordinator
        self.down_after = down_after
        self.health: dict[str, EndpointHealth] = {}
        # Pauses sent by calls that still hold their permit, by the task making the call.
        self._pausing: weakref.WeakKeyDictionary[asyncio.Task[Any], Any] = (
            weakref.WeakKeyDictionary())
        self._giving_back: set[asyncio.Task[None]] = set()

    def endpoint_health(self, url: str) -> EndpointHealth:
        return self.health.setdefault(url, EndpointHealth(self.down_after))

    def pause(self, seconds: float) -> None:
        sent = self.coordinator.pause.remote(seconds)
        task = asyncio.current_task()
        if task is not None:
            self._pausing[task] = sent

    async def __aenter__(self) -> RemoteLimiter:
        holder = HOLDER.get()
        granting = self.coordinator.acquire.remote(holder)
        try:
            await granting
        except asyncio.CancelledError:
            # A Ray call is not cancelled with its awaiter: the coordinator grants the permit
            # all the same, and no one would use it or give it back before the driver releases
            # the whole sample attempt. It goes back as soon as it is granted.
            self._give_back_when_granted(granting, holder)
            raise
        return self

    def _give_back_when_granted(self, granting: Any, holder: str) -> None:
        async def give_back() -> None:
            try:
                await granting
            except HolderReleased:
                return  # the driver released the attempt first: nothing was granted
            await self.coordinator.release.remote(holder)

        task = asyncio.ensure_future(give_back())
        self._giving_back.add(task)  # a task only weakly referenced may vanish mid-way
        task.add_done_callback(self._given_back)

    def _given_back(self, task: asyncio.Task[None]) -> None:
        self._giving_back.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            # The coordinator is unreachable (the run is ending): the driver's release_holder
            # takes the permit back with the rest of the attempt.
            log.warning("a permit granted to a cancelled request was not given back: %s", error)

    async def __aexit__(self, *exc: object) -> None:
        # A 429's pause must be in force before its permit goes back: an async actor does not
        # run one caller's calls in the order they were sent, and the coordinator would hand
        # the permit to a waiting request that then ignores the pause.
        pausing = self._pausing.pop(task, None) if (task := asyncio.current_task()) else None
        if pausing is not None:
            await pausing
        await self.coordinator.release.remote(HOLDER.get())


class RemoteQuestionBook(QuestionBook):
    """The run's question book, kept by the coordinator; accepted questions from memory."""

    def __init__(self, coordinator: Any, memory: Any) -> None:
        super().__init__(memory)
        self.coordinator = coordinator

    def add(self, culture: str, topic: str, sample_id: str, question: str) -> None:
        # Calls from one worker run in order at the coordinator: an add made inside a drafting
        # turn is there before the turn ends, so the next drafter sees it.
        if question.strip():
            self.coordinator.add_question.remote(culture, topic, sample_id, question)

    @contextlib.asynccontextmanager
    async def drafting(self, culture: str, topic: str) -> AsyncIterator[None]:
        holder = HOLDER.get()
        await self.coordinator.begin_draft.remote(culture, topic, holder)
        try:
            yield
        finally:
            await self.coordinator.end_draft.remote(culture, topic, holder)

    async def _asked_elsewhere(self, culture: str, topic: str, sample_id: str) -> list[str]:
        return list(await self.coordinator.asked.remote(culture, topic, sample_id))


class Forwarder:
    """Recorder, trace sink and event callback of a worker: everything goes to the driver."""

    def _send(self, kind: str, payload: Any) -> None:
        OUTBOX.get().put_nowait((kind, payload))

    def write_version(self, version: Version) -> None:
        self._send("version", version)

    def write_sample(self, line: DatasetLine) -> bool:
        self._send("sample", line)
        return True

    def emit(self, record: TraceLine) -> None:
        self._send("turn", record)

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        self._send("event", (kind, data))


class SampleWorker:
    """The body of the Ray actor (decorated in caredio/ray_executor.py)."""

    def __init__(self, settings: Settings, templates: dict[str, PromptTemplate],
                 coordinator: Any, base_url: str, model: str,
                 embedder: Embedder | None = None) -> None:
        os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
        configure_threads(settings.threads)
        self.settings = settings
        self.memory = open_memory(settings, embedder)
        if settings.memory.path == EPHEMERAL and not settings.memory.url:
            load_starter_pack(settings, self.memory)  # the same knowledge the driver planned on
        liveness = Liveness(settings.llm.health_url) if settings.llm.health_url else None
        limiter = RemoteLimiter(coordinator, settings.llm.down_after)
        # Each worker opens the run's cache file itself (SQLite is safe across processes; on a
        # cluster the path must be on a file system every node shares, or the cache is per node).
        agents = build_agents(settings, templates, base_url, model, liveness, limiter,
                              open_run_cache(settings, base_url))
        forwarder = Forwarder()
        # The driver's loop part, scorer and held-out judge, rebuilt on this worker's memory
        # (the split is by item id, so both sides draw the same line).
        knowledge, scorer, judge = loop_parts(settings, self.memory)
        questions = RemoteQuestionBook(coordinator, self.memory)
        self.toolkit = Toolkit(agents, Evidence(knowledge, scorer, questions, judge),
                               Outputs(forwarder, forwarder, forwarder.on_event), recipe(settings),
                               shared_checkpoints=True)
        self._resources = contextlib.AsyncExitStack()
        self._executor: LocalExecutor | None = None
        self._opening = asyncio.Lock()
        self._cpu_at_first = 0.0

    def pid(self) -> int:
        return os.getpid()

    def cpu_seconds(self) -> float:
        """CPU time this worker process spent on samples (its start-up, model load included,
        is not counted): what run.json's ``worker_cpu_seconds`` reports."""
        return time.process_time() - self._cpu_at_first if self._cpu_at_first else 0.0

    async def _ready(self) -> LocalExecutor:
        async with self._opening:
            if self._executor is None:
                from caredio.graph.checkpoints import postgres_saver_class

                assert self.settings.checkpoint_url
                saver = await self._resources.enter_async_context(
                    postgres_saver_class().from_conn_string(self.settings.checkpoint_url))
                self._executor = LocalExecutor(self.toolkit, saver)
                self._cpu_at_first = time.process_time()
            return self._executor

    async def optimize(self, spec: PlanEntry, holder: str) -> AsyncIterator[tuple[str, Any]]:
        """Stream the sample's records as they happen, then ("result", its result)."""
        executor = await self._ready()
        outbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        context = contextvars.Context()
        context.run(HOLDER.set, holder)
        context.run(OUTBOX.set, outbox)
        task = asyncio.ensure_future(executor.optimize(spec, None, context=context))
        while not task.done() or not outbox.empty():
            getter = asyncio.ensure_future(outbox.get())
            await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
        yield ("result", task.result())
