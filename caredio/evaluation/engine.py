"""Running an eval: validate everything, write the plan, ask the model, grade, summarize.

The model is reached exactly as a run reaches it (:func:`caredio.llm.endpoint.endpoint` starts the
embedded server or checks the configured one; :class:`caredio.llm.client.RoleLLM` brings the
request limiter, retries with backoff, ``Retry-After`` and the endpoint-down check). An item
whose call fails after its retries is recorded with its error and the eval goes on; an
endpoint that is down for good stops it with the resume command. Every check on the input
runs before the eval directory exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caredio.config.loading import describe_validation_error
from caredio.config.secrets import secrets_scrubbed
from caredio.config.settings import LLMSettings, Settings
from caredio.config.urls import is_redacted, public_url
from caredio.errors import EndpointDown, EndpointError, UserInputError
from caredio.evaluation import leakage
from caredio.evaluation.evaldir import EvalRecorder, open_eval, refuse_occupied
from caredio.evaluation.grading import grade
from caredio.evaluation.results import summarize, write_plot
from caredio.evaluation.tasks import TASKS, build_items, eval_templates, pick_countries, read_files
from caredio.llm.cache import open_cache
from caredio.llm.client import CallResult, RoleLLM
from caredio.llm.endpoint import endpoint, open_run_cache, preflight
from caredio.llm.limits import RequestLimiter
from caredio.llm.structured import MethodMemory
from caredio.run.job import new_run_id
from caredio.run.signals import terminate_as_interrupt
from caredio.tracing.events import OnEvent

log = logging.getLogger(__name__)
ROLE = "evaluated"


@dataclass
class EvalOptions:
    """What to evaluate; the endpoint and its limits come from :class:`Settings`."""

    files: list[Path]
    task: str = "both"
    countries: list[str] | None = None
    seed: int = 0
    max_questions: int | None = None
    exclude_memory: list[str] = field(default_factory=list)
    against: Path | None = None
    keep_leaked: bool = False
    out: Path | None = None
    max_tokens: int = 32
    temperature: float = 0.0

    def tasks(self) -> list[str]:
        if self.task == "both":
            return list(TASKS)
        if self.task not in TASKS:
            raise UserInputError(f"--task: unknown task '{self.task}' (saq, mcq or both)")
        return [self.task]


def eval_settings(settings: Settings, options: EvalOptions) -> Settings:
    """The endpoint settings with the eval's sampling: per-role overrides are the agents'."""
    if options.max_tokens < 1:
        raise UserInputError(f"--max-tokens: must be at least 1, not {options.max_tokens}")
    if not 0.0 <= options.temperature <= 2.0:
        raise UserInputError(f"--temperature: must be in [0, 2], not {options.temperature}")
    llm = settings.llm.model_copy(update={"max_tokens": options.max_tokens, "roles": {},
                                          "temperature": options.temperature})
    return settings.model_copy(update={"llm": llm})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Prepared:
    record: dict[str, Any]
    items: list[dict[str, Any]]
    excluded: list[dict[str, Any]]
    leaked_questions: int
    notes: list[str]


def prepare(settings: Settings, options: EvalOptions) -> Prepared:
    """Read and check every input, run the leakage check, build the items; writes nothing."""
    tasks = options.tasks()
    if not options.files:
        raise UserInputError("FILE: give at least one BLEnD {Country}_data.json file")
    if options.max_questions is not None and options.max_questions < 1:
        raise UserInputError(f"--max-questions: must be at least 1, not {options.max_questions}")
    files = read_files(options.files)
    countries = pick_countries(files, options.countries)
    if "mcq" in tasks and len(files) < 4:
        raise UserInputError(
            f"--task mcq: needs BLEnD files of at least 4 countries (distractors are other "
            f"countries' answers), got {len(files)}; add files or use --task saq")
    sources = [leakage.from_memory(location) for location in options.exclude_memory]
    if options.against is not None:
        sources.append(leakage.from_run(options.against))
    leaks: dict[str, str] = {}
    for source in sources:
        for qid, how in leakage.find_leaks(files, source).items():
            leaks.setdefault(qid, how)
    excluded = leakage.excluded_pairs(files, countries, leaks)
    skip = set() if options.keep_leaked else {(r["country"], r["question_id"]) for r in excluded}
    templates = eval_templates()
    plan = build_items(files, countries, tasks, options.seed, skip, options.max_questions,
                       templates)
    if not plan.items:
        raise UserInputError(
            f"nothing to ask: every question of {', '.join(countries)} was left out "
            f"({len(leaks)} found in memory, the rest ineligible for {'/'.join(tasks)})")
    notes = [note for source in sources for note in source.notes]
    items = [item.to_dict() for item in plan.items]
    if options.keep_leaked:
        for item in items:
            item["leaked"] = item["question_id"] in leaks
    record = {
        "kind": "caredio-eval",
        "options": {"tasks": tasks, "countries": countries, "seed": options.seed,
                    "max_questions": options.max_questions, "max_tokens": options.max_tokens,
                    "temperature": options.temperature, "keep_leaked": options.keep_leaked},
        "files": [{"path": str(f.path.resolve()), "country": f.country, "sha256": sha256(f.path)}
                  for f in files],
        "templates": {task: template.hash for task, template in templates.items()},
        "leakage": {"checked": [source.to_dict() for source in sources],
                    "against_run": str(options.against) if options.against else None,
                    "questions_found": len(leaks),
                    "by": {how: sum(1 for v in leaks.values() if v == how) for how in ("id", "text")},
                    "kept": options.keep_leaked, "notes": notes},
        "counts": plan.counts,
        "planned": len(items),
        "settings": {"llm": settings.snapshot()["llm"], "concurrency": settings.concurrency,
                     "max_failed_share": settings.max_failed_share},
    }
    return Prepared(record, items, excluded, len(leaks), notes)


def start_eval(settings: Settings, options: EvalOptions, on_event: OnEvent,
               ) -> tuple[Path, dict[str, Any]]:
    """A new eval: validate, check the endpoint, create the eval directory, execute."""
    settings = eval_settings(settings, options)
    with secrets_scrubbed(settings):
        prepared = prepare(settings, options)
        cache = open_cache(settings.llm.cache)  # a foreign or damaged file: exit 2 before writing
        if cache is not None:
            cache.close()
        eval_dir = options.out or Path("evals") / new_run_id()
        refuse_occupied(eval_dir)
        if settings.llm.base_url:
            asyncio.run(preflight(settings.llm.base_url))
        on_event("prepared", {"record": prepared.record, "dir": str(eval_dir)})
        record = {**prepared.record, "eval_id": eval_dir.name, "status": "created",
                  "created_at": time.time()}
        recorder = EvalRecorder.create(eval_dir, record, prepared.items, prepared.excluded)
        with recorder.locked():
            return eval_dir, _run(execute(settings, recorder, prepared.items, on_event))


def resume_eval(eval_dir: Path, on_event: OnEvent, base_url: str | None = None,
                ) -> dict[str, Any]:
    """Ask the items of an interrupted eval that have no successful answer yet."""
    from pydantic import ValidationError

    data = open_eval(eval_dir)
    stored = dict(data.record.get("settings") or {})
    llm = dict(stored.get("llm") or {})
    if base_url:
        llm["base_url"] = base_url
    elif is_redacted(llm.get("base_url")):
        if not os.environ.get("CAREDIO_LLM__BASE_URL"):
            raise UserInputError("llm.base_url: the eval's URL had credentials, which are never "
                                 "stored; pass it again (--base-url or $CAREDIO_LLM__BASE_URL)")
        llm["base_url"] = os.environ["CAREDIO_LLM__BASE_URL"]
    try:
        settings = Settings(llm=LLMSettings(**llm), concurrency=stored.get("concurrency", 4),
                            max_failed_share=stored.get("max_failed_share", 0.25))
    except ValidationError as exc:
        raise UserInputError(describe_validation_error(exc, str(eval_dir / "eval.json"))) from None
    with secrets_scrubbed(settings):
        if settings.llm.base_url:
            asyncio.run(preflight(settings.llm.base_url))
        recorder = EvalRecorder(eval_dir)
        with recorder.locked():
            return _run(execute(settings, recorder, data.items, on_event))


def _run(coro: Any) -> dict[str, Any]:
    try:
        return asyncio.run(coro)
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


async def _ask(llm: RoleLLM, item: dict[str, Any], recorder: EvalRecorder, on_event: OnEvent) -> None:
    result = CallResult(model=llm.model)
    line: dict[str, Any] = {"item_id": item["item_id"], "task": item["task"],
                            "country": item["country"], "question_id": item["question_id"],
                            "messages": item["messages"]}
    try:
        reply, _ = await llm.text(item["messages"], result)
    except EndpointDown:
        raise
    except EndpointError as exc:
        line.update(reply=None, correct=None, error=f"{type(exc).__name__}: {exc}")
    else:
        line.update(reply=reply, **grade(item, reply), error=None)
    line.update(model=result.model, input_tokens=result.input_tokens,
                output_tokens=result.output_tokens, latency_ms=result.latency_ms,
                cached=result.cached,
                retries=result.retries, retry_reasons=result.errors)
    recorder.append_answer(line)
    on_event("item_failed" if line["error"] else "answered", line)


async def execute(settings: Settings, recorder: EvalRecorder, items: list[dict[str, Any]],
                  on_event: OnEvent) -> dict[str, Any]:
    """Ask every item that has no successful answer yet; returns the final eval.json record."""
    started = time.time()
    todo = [item for item in items if not recorder.done(item["item_id"])]
    recorder.write(status="running", pid=os.getpid(), started_at=started, error=None)
    on_event("planned", {"planned": len(items), "todo": len(todo)})
    status, error = "failed", None
    try:
        with terminate_as_interrupt():
            async with endpoint(settings) as (base_url, model, liveness), \
                    contextlib.AsyncExitStack() as resources:
                recorder.write(endpoint=public_url(base_url), model=model,
                               embedded_model=settings.llm.base_url is None)
                # The embedded server answers one request at a time (as in a run).
                in_flight = 1 if settings.llm.base_url is None else settings.concurrency
                limiter = RequestLimiter(in_flight, settings.llm.requests_per_minute,
                                         down_after=settings.llm.down_after)
                cache = open_run_cache(settings, base_url)
                if cache is not None:
                    resources.callback(cache.close)
                llm = RoleLLM(ROLE, settings.llm, limiter, MethodMemory("prompt"), base_url, model, liveness,
                              cache)
                pending = list(reversed(todo))

                async def worker() -> None:
                    while pending:
                        await _ask(llm, pending.pop(), recorder, on_event)

                workers = [asyncio.create_task(worker()) for _ in range(max(2, in_flight * 2))]
                try:
                    await asyncio.gather(*workers)
                except BaseException:
                    for task in workers:
                        task.cancel()
                    await asyncio.gather(*workers, return_exceptions=True)
                    raise
        status = "completed"
    except (KeyboardInterrupt, asyncio.CancelledError):
        status = "interrupted"
        raise
    except EndpointDown as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise EndpointDown(f"{exc}; the eval stopped; continue it with "
                           f"`caredio eval --resume {recorder.dir}`") from None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        data = open_eval(recorder.dir)
        summary = summarize(data)
        failed = summary["failed"]
        if status == "completed" and failed > settings.max_failed_share * max(len(items), 1):
            status = "failed"
            error = (f"{failed} of {len(items)} items failed, more than "
                     f"max_failed_share={settings.max_failed_share}")
        record = recorder.write(status=status, error=error, finished_at=time.time(),
                                wall_seconds=round(time.time() - started, 1), **summary)
        if summary["answered"]:
            record = recorder.write(plot=write_plot(open_eval(recorder.dir)))
    return record
