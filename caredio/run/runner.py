"""Running a job end to end: the entry points of ``caredio run`` and ``caredio resume``.

Everything that can be wrong with the input is checked before the run directory exists, so a
bad input leaves nothing behind; so is every shared service the run was pointed at (Postgres,
Chroma server, Ray cluster: exit 2 when one does not answer). One module per concern does the
rest: caredio/run/execution.py (run.json around the run graph and its executor),
caredio/llm/endpoint.py, caredio/run/agent_factory.py, caredio/run/elicitation.py,
caredio/run/selection.py (the run-end selection), caredio/run/signals.py,
caredio/run/resumption.py (a resumed run's settings and URL secrets), caredio/run/executors/.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from caredio.config.secrets import secrets_scrubbed
from caredio.config.settings import Settings
from caredio.graph.checkpoints import check_postgres
from caredio.llm.endpoint import preflight
from caredio.memory.embeddings import Embedder
from caredio.run.execution import execute
from caredio.run.job import new_run_id, prepare
from caredio.run.resumption import resumed_settings
from caredio.run.signals import run_coroutine
from caredio.rundir.recorder import RunRecorder
from caredio.threads import configure_threads
from caredio.tracing.events import OnEvent


def check_services(settings: Settings, missing: list[str]) -> None:
    """Every shared service and executor requirement, before anything is written."""
    if settings.checkpoint_url:
        asyncio.run(check_postgres(settings.checkpoint_url))
    if settings.executor == "ray":
        from caredio.run.executors.ray import check_ray_settings

        check_ray_settings(settings, missing)


def start_run(settings: Settings, on_event: OnEvent, embedder: Embedder | None = None,
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
            check_services(settings, job.missing)
            if settings.llm.base_url:
                asyncio.run(preflight(settings.llm.base_url))
            run_dir = Path(settings.out) / (settings.run_id or new_run_id())
            recorder = RunRecorder.create(run_dir, settings.snapshot(), job.templates)
            with recorder.locked():
                return run_dir, run_coroutine(execute(job, run_dir, recorder, on_event, callbacks,
                                                      tracer_provider))
        finally:
            job.memory.close()


def resume_run(run_dir: Path, on_event: OnEvent, embedder: Embedder | None = None,
               callbacks: list[Any] | None = None, tracer_provider: Any = None,
               **overrides: Any) -> dict[str, Any]:
    """Finish an interrupted run with its own config, plan and template snapshot.

    Finished samples are skipped, unfinished and failed ones continue from their last
    checkpointed step; dataset and trajectory lines are keyed, so none is written twice.
    ``overrides``: ``base_url``, ``checkpoint_url`` (URLs whose secrets were not stored),
    ``executor`` and ``ray_address`` (a Ray run may be finished locally, and the reverse).
    """
    settings = resumed_settings(run_dir, **overrides)
    configure_threads(settings.threads)
    with secrets_scrubbed(settings):
        job = prepare(settings, templates_dir=run_dir / "prompts", embedder=embedder)
        recorder = RunRecorder(run_dir)
        try:
            check_services(settings, job.missing)
            with recorder.locked():
                return run_coroutine(execute(job, run_dir, recorder, on_event, callbacks,
                                             tracer_provider))
        finally:
            job.memory.close()

