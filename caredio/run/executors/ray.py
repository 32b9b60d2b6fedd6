"""The Ray executor (``--executor ray``): samples optimized by Ray worker actors.

The driver (the ``caredio`` process) plans, runs the run graph and is the only writer of the
run directory: each sample is sent to the least busy worker, which streams the sample's
records back as they happen (caredio/ray_worker.py). Shared state lives where every machine
reaches it: checkpoints in Postgres (``--checkpoint-url``), memory on a Chroma server
(``--memory-url``; an ephemeral starter-pack memory works for tests and trials), request
permits and the question book in one coordinator actor (caredio/coordination.py).

A worker that dies (SIGKILL, a lost node) fails the samples it had in flight; the driver
gives back what they held at the coordinator and sends each to another worker, where it
continues from its last checkpoint: a killed worker loses only its in-flight step, and since
dataset lines are keyed no sample is written twice. Ray restarts the dead actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from caredio.config.settings import Settings
from caredio.errors import CaredioError, ServiceUnreachable, UserInputError
from caredio.memory.questions import QuestionBook
from caredio.run.executors.local import failed_result
from caredio.run.job import EPHEMERAL, Job
from caredio.rundir.formats import PlanEntry
from caredio.rundir.recorder import RunRecorder
from caredio.tracing.events import OnEvent
from caredio.tracing.sinks import TraceSink

log = logging.getLogger(__name__)

ATTEMPTS = 6  # tries of a sample on workers that died under it, before it is marked failed
REST = 5.0  # seconds a worker that just died is passed over (Ray is restarting it)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserInputError("--executor ray: Ray is not installed; "
                             "pip install 'caredio[scale]'") from None
    return ray


def check_ray_settings(settings: Settings, missing: list[str] | None = None) -> None:
    """What a Ray run needs, checked before the run directory exists (exit 2 otherwise)."""
    _ray()
    if not settings.llm.base_url:
        raise UserInputError("--executor ray needs --base-url: the embedded model server serves "
                             "one request at a time on this machine")
    if not settings.checkpoint_url:
        raise UserInputError("--executor ray needs --checkpoint-url (Postgres): workers on other "
                             "machines cannot share the run directory's SQLite file")
    if not settings.memory.url and settings.memory.path != EPHEMERAL:
        raise UserInputError("--executor ray needs --memory-url (a Chroma server) or an ephemeral "
                             "memory (--memory :memory:): a memory directory is one process's")
    if missing and not settings.memory.url:
        raise UserInputError(f"--executor ray: knowledge of '{missing[0]}' would be elicited into "
                             "this process's memory only; use --memory-url (a Chroma server)")
    if settings.ray_address and settings.ray_address != "auto":
        _check_reachable(settings.ray_address)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except ValueError:
        raise UserInputError(f"--ray-address: expected host:port or ray://host:port, not "
                             f"{address!r}") from None
    except OSError as exc:
        raise ServiceUnreachable(f"cannot reach the Ray cluster at {address} "
                                 f"({type(exc).__name__}); is it running? (--ray-address)") from None


def _portable(embedder: Any) -> Any:
    """The driver's embedder, when it may travel to the workers (``portable = True``: small,
    picklable test doubles); otherwise each worker loads the configured backend itself."""
    return embedder if getattr(embedder, "portable", False) else None


class RayExecutor:
    """Sends samples to Ray workers; writes what they stream back."""

    def __init__(self, ray: Any, workers: list[Any], coordinator: Any, recorder: RunRecorder,
                 sink: TraceSink, on_event: OnEvent) -> None:
        self.ray = ray
        self.workers = workers
        self.coordinator = coordinator
        self.recorder = recorder
        self.sink = sink
        self.on_event = on_event
        self.busy = [0] * len(workers)
        self.down_until = [0.0] * len(workers)
        self.lost = 0  # worker failures seen (each sample attempt that died with its worker)
        self.finished = [0] * len(workers)  # samples each worker brought to an end

    @classmethod
    @contextlib.asynccontextmanager
    async def started(cls, job: Job, recorder: RunRecorder, sink: TraceSink, on_event: OnEvent,
                      questions: QuestionBook, base_url: str, model: str,
                      ) -> AsyncIterator[RayExecutor]:
        ray = _ray()
        from caredio.graph.checkpoints import setup_postgres
        from caredio.run.executors.coordination import RunCoordinator
        from caredio.run.executors.ray_worker import SampleWorker

        settings = job.settings
        assert settings.checkpoint_url
        await setup_postgres(settings.checkpoint_url)
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=settings.ray_address, include_dashboard=False,
                     num_cpus=None if settings.ray_address else settings.ray_workers,
                     log_to_driver=True, configure_logging=False)
        coordinator = ray.remote(num_cpus=0, max_concurrency=10_000)(RunCoordinator).remote(
            settings.concurrency, settings.llm.requests_per_minute, questions.entries())
        worker_class = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0,
                                  max_concurrency=10_000)(SampleWorker)
        workers = [worker_class.remote(settings, job.templates, coordinator, base_url, model,
                                       _portable(job.memory.embedder))
                   for _ in range(settings.ray_workers)]
        recorder.write_run(ray_workers=settings.ray_workers,
                           ray_address=settings.ray_address or "local")
        executor = cls(ray, workers, coordinator, recorder, sink, on_event)
        try:
            yield executor
        finally:
            recorder.write_run(workers_lost=executor.lost, worker_samples=executor.finished,
                               worker_cpu_seconds=await executor.worker_cpu())
            for actor in [*workers, coordinator]:
                ray.kill(actor, no_restart=True)
            if started_here:
                ray.shutdown()

    async def worker_cpu(self) -> list[float | None]:
        """Each worker's CPU seconds on samples (None: it did not answer, e.g. just died)."""
        async def one(worker: Any) -> float | None:
            try:
                return round(float(await asyncio.wait_for(worker.cpu_seconds.remote(), 10)), 2)
            except (self.ray.exceptions.RayError, TimeoutError):
                return None

        return list(await asyncio.gather(*(one(worker) for worker in self.workers)))

    async def _pick(self) -> int:
        """The least busy worker that has not just died (else the one back soonest)."""
        now = time.monotonic()
        up = [i for i in range(len(self.workers)) if self.down_until[i] <= now]
        if up:
            return min(up, key=self.busy.__getitem__)
        index = min(range(len(self.workers)), key=self.down_until.__getitem__)
        await asyncio.sleep(self.down_until[index] - now)
        return index

    def _deliver(self, kind: str, payload: Any) -> None:
        if kind == "version":
            self.recorder.write_version(payload)
        elif kind == "sample":
            self.recorder.write_sample(payload)
        elif kind == "turn":
            self.sink.emit(payload)
        elif kind == "event":
            self.on_event(*payload)

    async def optimize(self, spec: PlanEntry, callbacks: Any = None) -> dict[str, Any]:
        """The sample on a worker; on another (from its last checkpoint) if that one dies."""
        exceptions = self.ray.exceptions
        lost = (exceptions.RayActorError, exceptions.WorkerCrashedError,
                exceptions.ObjectLostError, exceptions.NodeDiedError)
        error = ""
        for attempt in range(1, ATTEMPTS + 1):
            index = await self._pick()
            holder = f"{spec['sample_id']}#{uuid.uuid4().hex[:8]}"
            self.busy[index] += 1
            try:
                stream = self.workers[index].optimize.options(num_returns="streaming").remote(
                    spec, holder)
                result: dict[str, Any] | None = None
                async for ref in stream:
                    kind, payload = await ref
                    if kind == "result":
                        result = payload
                    else:
                        self._deliver(kind, payload)
                assert result is not None
                self.finished[index] += 1
                return result
            except exceptions.RayTaskError as exc:  # raised in the worker: ours, re-raised here
                cause = exc.cause
                if isinstance(cause, CaredioError):
                    raise cause from None
                raise
            except lost as exc:
                self.lost += 1
                self.down_until[index] = time.monotonic() + REST
                error = f"{type(exc).__name__}: the worker died"
                log.warning("sample %s: worker %d died (attempt %d of %d); it continues from its "
                            "last checkpoint on another worker", spec["sample_id"], index,
                            attempt, ATTEMPTS)
                self.on_event("worker_lost", {"sample_id": spec["sample_id"], "worker": index})
            finally:
                self.busy[index] -= 1
                # Its permits and drafting turn, if it died holding them (a no-op otherwise).
                await self.coordinator.release_holder.remote(holder)
        self.on_event("sample_failed", {"sample_id": spec["sample_id"],
                                        "culture": spec["culture"], "error": error})
        return failed_result(spec, f"{error} on {ATTEMPTS} attempts")
