"""A job before it runs: validated settings, templates, topics, memory, and then its plan.

Everything that can be wrong with the input is checked by :func:`prepare`, before a run
directory exists, so bad input leaves nothing behind. The plan itself needs knowledge of
every culture (auto contrast ranks cultures by their memory centroids), so it is made once
the cultures memory lacks have been elicited, and written to ``plan.jsonl`` then; a resumed
run follows that file.
"""

from __future__ import annotations

import difflib
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caredio.config.settings import Settings
from caredio.errors import UserInputError
from caredio.llm.cache import open_cache
from caredio.memory.embeddings import Embedder, embedder_for
from caredio.memory.ingest import starter_pack
from caredio.memory.items import canonical_culture
from caredio.memory.judge import LOOP, Judge, MemoryPart, loop_scorer
from caredio.memory.scoring import Scorer
from caredio.memory.store import CulturalMemory
from caredio.prompts import PromptTemplate, load_templates
from caredio.rundir.formats import PlanEntry
from caredio.rundir.recorder import RunRecorder
from caredio.topics import Topic, load_topics, resolve_topics

log = logging.getLogger(__name__)

EPHEMERAL = ":memory:"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


@dataclass
class Job:
    """A validated job: everything known before any file is written or model started."""

    settings: Settings
    templates: dict[str, PromptTemplate]
    topics: list[Topic]
    cultures: list[str]
    memory: CulturalMemory
    scorer: Scorer
    missing: list[str] = field(default_factory=list)  # cultures to elicit from the expert
    # What the loop's agents and scorer read: all knowledge, or its loop part when a held-out
    # judge (judge.split) keeps the rest for itself.
    knowledge: CulturalMemory | MemoryPart | None = None
    judge: Judge | None = None

    def __post_init__(self) -> None:
        if self.knowledge is None:
            self.knowledge = self.memory

    def contrast(self, culture: str) -> list[str]:
        if self.settings.contrast == "auto":
            return self.scorer.contrast_set(culture, "auto")
        return [canonical_culture(c) for c in self.settings.contrast
                if canonical_culture(c) != culture]

    def strategy_record(self) -> dict[str, Any]:
        """What run.json says of how samples are made and judged (compare reads it)."""
        settings = self.settings
        judge = settings.judge
        return {"strategy": settings.strategy, "best_of_n": settings.best_of_n,
                "llm_seed": settings.llm.seed,
                "judge": {"split": judge.split, "embedding": judge.embedding} if judge.split else None}

    def plan_record(self, plan: list[PlanEntry]) -> dict[str, Any]:
        """run.json fields that need the plan: best-of-n's answers per sample, the judge's
        items (after checking every culture of the plan, contrast included, has some)."""
        from caredio.graph.strategies import candidates

        record: dict[str, Any] = {}
        settings = self.settings
        if settings.strategy != "loop":
            record["candidates"] = sorted({candidates(settings.strategy, settings.best_of_n,
                                                      settings.loop, len(spec["contrast"]))
                                           for spec in plan})
        if self.judge is not None:
            self.judge.check(sorted({c for spec in plan for c in [spec["culture"], *spec["contrast"]]}))
            record["judge"] = self.judge.describe()
        return record

    def plan(self, run_id: str) -> list[PlanEntry]:
        """The samples to optimize; call once memory knows every culture (after elicitation)."""
        specs: list[PlanEntry] = []
        for culture in self.cultures:
            contrast = self.contrast(culture)
            for topic in self.topics:
                for index in range(self.settings.samples_per_topic):
                    specs.append(PlanEntry(
                        sample_id=f"{slug(culture)}-{topic.id}-{index:03d}", run_id=run_id,
                        culture=culture, topic=topic.id, topic_name=topic.name,
                        topic_description=topic.description, contrast=contrast, index=index,
                    ))
        return specs


def open_memory(settings: Settings, embedder: Embedder | None = None) -> CulturalMemory:
    path = settings.memory.path or ".caredio/memory"
    embedder = embedder or embedder_for(settings.memory.embedding, settings.memory.embedding_runtime)
    if settings.memory.url:
        return CulturalMemory.open(embedder, url=settings.memory.url)
    return CulturalMemory.open(embedder, path=None if path == EPHEMERAL else path)


def prepare(settings: Settings, templates_dir: str | Path | None = None,
            embedder: Embedder | None = None) -> Job:
    """Check the whole job; raises UserInputError before anything is written."""
    templates = load_templates(templates_dir if templates_dir is not None else settings.prompts_dir)
    check_cache(settings.llm.cache)  # a foreign or damaged cache file: exit 2 before anything is written
    topics = resolve_topics(settings.topics, load_topics())
    cultures = list(dict.fromkeys(canonical_culture(c) for c in settings.cultures))
    if not cultures:
        raise UserInputError("--cultures: no culture given")
    memory = open_memory(settings, embedder)
    try:
        return _checked_job(settings, templates, topics, cultures, memory)
    except BaseException:
        memory.close()  # bad input: leave the memory directory free for the next try
        raise


def check_cache(setting: bool | str) -> None:
    """The response cache file opens and is a CAReDiO cache (else UserInputError)."""
    cache = open_cache(setting)
    if cache is not None:
        cache.close()


def load_starter_pack(settings: Settings, memory: CulturalMemory) -> None:
    """The packaged starter knowledge, when ``memory.starter_pack`` is on: every command that
    reads memory (run, score, memory stats) sees the same knowledge on a fresh machine."""
    if settings.memory.starter_pack:
        added = memory.add_knowledge(starter_pack())
        if added:
            log.info("loaded %d starter knowledge items into %s", added, memory.label)


def _checked_job(settings: Settings, templates: dict[str, PromptTemplate], topics: list[Topic],
                 cultures: list[str], memory: CulturalMemory) -> Job:
    load_starter_pack(settings, memory)
    known = set(memory.cultures())
    explicit_contrast = ([] if settings.contrast == "auto"
                         else [canonical_culture(c) for c in settings.contrast])
    missing = [c for c in dict.fromkeys([*cultures, *explicit_contrast]) if c not in known]
    for culture in missing:  # a typo must not become a new culture elicited from the model
        close = difflib.get_close_matches(culture, sorted(known), n=1, cutoff=0.75)
        if close:
            raise UserInputError(f"--cultures: no knowledge of '{culture}' in {memory.label}; "
                                 f"did you mean '{close[0]}'?")
    if missing and not settings.memory.elicit_missing:
        raise UserInputError(
            f"--cultures: no knowledge of '{missing[0]}' in {memory.label}; ingest some with "
            "`caredio memory ingest` or set memory.elicit_missing = true"
        )
    if settings.contrast == "auto" and len(known | set(missing)) < 2:
        raise UserInputError("--contrast: memory holds no other culture to contrast with")
    knowledge, scorer, judge = loop_parts(settings, memory)
    if judge is not None:
        judge.check([c for c in dict.fromkeys([*cultures, *explicit_contrast]) if c in known])
    return Job(settings, templates, topics, cultures, memory, scorer, missing,
               knowledge=knowledge, judge=judge)


def loop_parts(settings: Settings, memory: CulturalMemory,
               ) -> tuple[CulturalMemory | MemoryPart, Scorer, Judge | None]:
    """What the loop's agents and scorer read (all knowledge, or its loop part), its scorer,
    and the held-out judge (judge.split): built alike by the driver and by each Ray worker."""
    if not settings.judge.split:
        return memory, Scorer(memory, settings.scoring), None
    knowledge = MemoryPart(memory, settings.judge.split, LOOP)
    return (knowledge, loop_scorer(knowledge, settings.scoring),
            Judge(memory, settings.judge, settings.scoring))


def ensure_plan(job: Job, run_dir: Path, recorder: RunRecorder) -> list[PlanEntry]:
    """The run's plan: as written at its start (a resume cannot drift with memory), or made
    now and written once."""
    stored = recorder.read_plan()
    if stored:
        return stored
    plan = job.plan(run_dir.name)
    recorder.write_plan(plan)
    recorder.write_run(planned=len(plan))
    return plan
