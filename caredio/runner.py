"""Running a job end to end: validate, open memory, start the model, run the graph, record.

Everything that can be wrong with the input is checked before the run directory exists, so a
bad input leaves nothing behind. The embedded server, when used, is stopped on every exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from caredio.agents import ContrastCritic, CultureExpert, Refiner
from caredio.agents.base import TurnContext
from caredio.checkpoints import check_postgres, open_checkpointer
from caredio.config import (
    ROLES,
    Settings,
    describe_validation_error,
    is_redacted,
    public_url,
    secrets_scrubbed,
)
from caredio.conversation import question_response
from caredio.errors import EndpointDown, EndpointError, UserInputError
from caredio.graph.run import build_run_graph
from caredio.graph.sample import Toolkit
from caredio.job import Job, ensure_plan, new_run_id, open_memory, prepare
from caredio.liveness import Liveness
from caredio.llm import MethodMemory, RequestLimiter, RoleLLM
from caredio.local_llm import LocalLLMServer
from caredio.memory.embeddings import Embedder
from caredio.memory.selection import select
from caredio.memory.store import KnowledgeItem
from caredio.prompts import PromptTemplate
from caredio.questions import QuestionBook
from caredio.records import (
    SELECTED,
    TRAJECTORIES,
    RunRecorder,
    atomic_write,
    read_jsonl,
    templates_hash,
)
from caredio.telemetry import SpanSink, otlp_provider
from caredio.threads import configure_threads, llm_threads
from caredio.tracing import LoggingTraceSink, MultiSink

log = logging.getLogger(__name__)

ELICITED_WEIGHT = 0.5
Event = Callable[[str, dict[str, Any]], None]
__all__ = ["Job", "execute", "new_run_id", "open_memory", "prepare", "public_url", "resume_run",
           "start_run"]


@contextlib.asynccontextmanager
async def endpoint(settings: Settings) -> AsyncIterator[tuple[str, str, Liveness | None]]:
    """The (base_url, model, liveness) to use: the configured endpoint, or the embedded server."""
    if settings.llm.base_url:
        await preflight(settings.llm.base_url)
        liveness = Liveness(settings.llm.health_url) if settings.llm.health_url else None
        yield settings.llm.base_url, settings.llm.model or "default", liveness
        return
    server = LocalLLMServer(gguf=settings.llm.gguf, n_ctx=settings.llm.local_ctx,
                            threads=llm_threads(settings.threads))
    try:
        await asyncio.to_thread(server.start)
        assert server.process is not None
        yield (server.base_url, settings.llm.model or server.model,
               Liveness(server.health_url, server.process, server.output_tail))
    finally:
        server.stop()


async def preflight(base_url: str, timeout: float = 10.0) -> None:
    """Fail fast, with a clear message, when the endpoint is not there at all.

    Any HTTP answer will do (some servers have no ``/models``, or want a key for it); only
    a refused, dropped or silent connection stops the run before it starts.
    """
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            await client.get(base_url.rstrip("/") + "/models")
    except httpx.TransportError as exc:
        raise EndpointError(
            f"cannot reach the LLM endpoint {public_url(base_url)} ({type(exc).__name__}); "
            "is the server running? (--base-url)"
        ) from None


async def _elicit(job: Job, expert: CultureExpert, context: TurnContext) -> None:
    for culture in job.missing:
        items = []
        for topic in job.topics:
            facts = await expert.elicit_knowledge(context, culture, topic.name, topic.description)
            items += [KnowledgeItem(culture=culture, text=f, topic=topic.id,
                                    weight=ELICITED_WEIGHT, source="llm")
                      for f in facts]
        if not items:
            raise EndpointError(f"the culture expert gave no knowledge of '{culture}'")
        await asyncio.to_thread(job.memory.add_knowledge, items)
        log.info("elicited %d knowledge items for %s", len(items), culture)


def build_agents(
    settings: Settings, templates: dict[str, PromptTemplate], base_url: str, model: str,
    liveness: Liveness | None = None,
) -> tuple[CultureExpert, ContrastCritic, Refiner]:
    """The three agents, sharing one request limiter (the whole run's concurrency bound)."""
    # The embedded llama.cpp server answers one request at a time: more in flight would only
    # queue inside it, where the client's timeout keeps running.
    in_flight = 1 if settings.llm.base_url is None else settings.concurrency
    limiter = RequestLimiter(in_flight, settings.llm.requests_per_minute,
                             down_after=settings.llm.down_after)
    methods = MethodMemory(settings.llm.structured_output)
    llms = {role: RoleLLM(role, settings.llm, limiter, methods, base_url, model, liveness)
            for role in ROLES}
    return (CultureExpert(llms["culture_expert"], templates),
            ContrastCritic(llms["contrast_critic"], templates), Refiner(llms["refiner"], templates))


@contextlib.contextmanager
def _terminate_as_interrupt() -> Any:
    """SIGTERM stops a run like Ctrl-C: cancel the main task, record "interrupted"."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    try:
        loop.add_signal_handler(signal.SIGTERM, task.cancel) if task else None
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
        task = None
    try:
        yield
    finally:
        if task is not None:
            loop.remove_signal_handler(signal.SIGTERM)


async def execute(job: Job, run_dir: Path, recorder: RunRecorder, on_event: Event,
                  callbacks: list[Any] | None = None, tracer_provider: Any = None,
                  ) -> dict[str, Any]:
    """Run (or continue) the graph for the job; returns the final run.json record.

    Each sample's failure is recorded (run.json ``failures``, its trace line) and the run
    goes on; the status is "failed" only past ``max_failed_share``. An endpoint that is down
    for good stops the run at once (EndpointError, with the resume command).

    ``callbacks`` (LangChain callback handlers: tracers such as LangSmith or Langfuse) follow
    the run into every sample graph and agent call; ``tracer_provider`` (OpenTelemetry)
    receives every agent turn as a span (else ``telemetry.otlp_endpoint``, if set).
    """
    settings = job.settings
    run_id = run_dir.name
    started = time.time()
    recorder.write_run(run_id=run_id, status="running", pid=os.getpid(), started_at=started,
                       error=None, config_hash=settings.config_hash(),
                       templates_hash=templates_hash(job.templates),
                       template_hashes={n: t.hash for n, t in job.templates.items()},
                       threads=configure_threads(settings.threads))
    status, error = "failed", None
    summary: dict[str, Any] = {}
    if tracer_provider is None and settings.telemetry.otlp_endpoint:
        tracer_provider = otlp_provider(settings.telemetry.otlp_endpoint,
                                        settings.telemetry.service_name)
    spans = SpanSink(tracer_provider, run_id) if tracer_provider is not None else None
    try:
        with _terminate_as_interrupt():
            async with endpoint(settings) as (base_url, model, liveness):
                recorder.write_run(endpoint=public_url(base_url), model=model,
                                   embedded_model=settings.llm.base_url is None)
                expert, critic, refiner = build_agents(settings, job.templates, base_url, model,
                                                       liveness)
                sink = MultiSink(recorder, LoggingTraceSink(), *([spans] if spans else []))
                if job.missing:
                    await _elicit(job, expert, TurnContext(run_id, "_memory", 0, sink))
                # Planned only now: auto contrast ranks the elicited cultures' knowledge too.
                plan = await asyncio.to_thread(ensure_plan, job, run_dir, recorder)
                questions = QuestionBook(job.memory).seed(read_jsonl(run_dir / TRAJECTORIES))
                toolkit = Toolkit(expert, critic, refiner, job.memory, job.scorer, recorder, sink,
                                  settings.loop, settings.system_prompt, _guarded(on_event),
                                  questions, shared_checkpoints=bool(settings.checkpoint_url))
                async with open_checkpointer(settings.checkpoint_url, run_dir) as saver:
                    graph = build_run_graph(toolkit, lambda: plan, saver)
                    final = await graph.ainvoke(
                        {}, {"max_concurrency": max(settings.concurrency * 2, 4),
                             "callbacks": callbacks, "run_name": f"caredio_run:{run_id}"})
        summary = final["summary"]
        failures = [r for r in final["results"] if r["status"] == "failed"]
        summary["failures"] = [{k: r[k] for k in ("sample_id", "culture", "error")}
                               for r in failures]
        await asyncio.to_thread(accept_into_memory, job, run_dir)
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
        done = len(read_jsonl(run_dir / "dataset.jsonl"))
        raise EndpointDown(f"{exc}; the run stopped with {done} samples finished; continue it "
                           f"with `caredio resume {run_dir}`") from None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if spans is not None:
            spans.close(status)
        record = recorder.write_run(
            status=status, error=error, finished_at=time.time(),
            wall_seconds=round(time.time() - started, 1),
            tokens={role: dict(recorder.tokens[role]) for role in ROLES}, retries=recorder.retries,
            **summary,
        )
    return record


def _guarded(on_event: Event) -> Event:
    """Progress callbacks are display only: a failing one is logged, never stops the run."""
    def guarded(kind: str, data: dict[str, Any]) -> None:
        try:
            on_event(kind, data)
        except Exception:
            log.exception("progress display failed on a %s event (the run goes on)", kind)

    return guarded


def accept_into_memory(job: Job, run_dir: Path) -> None:
    """Selection over the run's dataset, and the selected samples go into memory's samples."""
    lines = read_jsonl(run_dir / "dataset.jsonl")
    if not lines:
        return
    # Same rule as `caredio select`: never keep a near-duplicate of what earlier runs accepted.
    prior_ids, prior_vectors = job.memory.sample_embeddings(exclude_run=run_dir.name)
    picks = select(lines, job.memory.embedder, budget=len(lines), per_culture=True,
                   prior_ids=prior_ids, prior_vectors=prior_vectors if prior_ids else None)
    chosen = [lines[p.index] for p in picks]
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in chosen)
    atomic_write(run_dir / SELECTED, text)
    job.memory.add_samples([
        dict(zip(("question", "response"), question_response(line["messages"]), strict=True),
             **line["metadata"])
        for line in chosen
    ])


def start_run(settings: Settings, on_event: Event, embedder: Embedder | None = None,
              callbacks: list[Any] | None = None, tracer_provider: Any = None,
              ) -> tuple[Path, dict[str, Any]]:
    """A new run: validate, check the endpoint, create the run directory, execute.

    Bad input (UserInputError) and an unreachable endpoint both stop before the run
    directory exists. No log line written meanwhile shows the run's key or URL secrets.
    """
    configure_threads(settings.threads)
    with secrets_scrubbed(settings):
        job = prepare(settings, embedder=embedder)
        try:
            if settings.llm.base_url:
                asyncio.run(preflight(settings.llm.base_url))
            if settings.checkpoint_url:
                asyncio.run(check_postgres(settings.checkpoint_url))
            run_dir = Path(settings.out) / (settings.run_id or new_run_id())
            recorder = RunRecorder.create(run_dir, settings.snapshot(), job.templates)
            with recorder.locked():
                return run_dir, _run(execute(job, run_dir, recorder, on_event, callbacks,
                                             tracer_provider))
        finally:
            job.memory.close()


def _run(coro: Any) -> dict[str, Any]:
    """asyncio.run; a SIGTERM-cancelled run surfaces like Ctrl-C (KeyboardInterrupt)."""
    try:
        return asyncio.run(coro)
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


def _restore_url(url: str | None, override: str | None, env: str, what: str,
                 flag: str | None = None) -> str | None:
    """A URL whose secrets were kept off disk must come back from a flag or the environment."""
    if override:
        return override
    if not is_redacted(url):
        return url
    if os.environ.get(env):
        return os.environ[env]
    raise UserInputError(f"{what}: the run's URL had credentials, which are never stored; "
                         f"pass it again ({f'{flag} or ' if flag else ''}${env})")


def resume_run(run_dir: Path, on_event: Event, embedder: Embedder | None = None,
               callbacks: list[Any] | None = None, tracer_provider: Any = None,
               **overrides: Any) -> dict[str, Any]:
    """Finish an interrupted run with its own config, plan and template snapshot.

    Finished samples are skipped, unfinished and failed ones continue from their last
    checkpointed step; dataset and trajectory lines are keyed, so none is written twice.
    """
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise UserInputError(f"{run_dir}: not a run directory (no config.json)")
    try:
        snapshot = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{config_path}: unreadable run config: {exc}") from None
    llm = snapshot.setdefault("llm", {})
    llm["base_url"] = _restore_url(llm.get("base_url"), overrides.get("base_url"),
                                   "CAREDIO_LLM__BASE_URL", "llm.base_url", "--base-url")
    for name, role in llm.get("roles", {}).items():
        role["base_url"] = _restore_url(role.get("base_url"), None,
                                        f"CAREDIO_LLM__ROLES__{name.upper()}__BASE_URL",
                                        f"llm.roles.{name}.base_url")
    memory = snapshot.setdefault("memory", {})
    memory["url"] = _restore_url(memory.get("url"), None, "CAREDIO_MEMORY__URL", "memory.url")
    snapshot["checkpoint_url"] = _restore_url(snapshot.get("checkpoint_url"),
                                              overrides.get("checkpoint_url"),
                                              "CAREDIO_CHECKPOINT_URL", "checkpoint_url",
                                              "--checkpoint-url")
    for key in ("executor", "ray_address"):  # where to run a resume is the resumer's choice
        if overrides.get(key):
            snapshot[key] = overrides[key]
    try:
        settings = Settings(**snapshot)
    except ValidationError as exc:
        raise UserInputError(describe_validation_error(exc, str(config_path))) from None
    configure_threads(settings.threads)
    with secrets_scrubbed(settings):
        job = prepare(settings, templates_dir=run_dir / "prompts", embedder=embedder)
        recorder = RunRecorder(run_dir)
        try:
            if settings.checkpoint_url:
                asyncio.run(check_postgres(settings.checkpoint_url))
            with recorder.locked():
                return _run(execute(job, run_dir, recorder, on_event, callbacks,
                                    tracer_provider))
        finally:
            job.memory.close()
