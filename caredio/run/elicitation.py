"""Knowledge of the cultures memory lacks, asked of the culture expert before planning."""

from __future__ import annotations

import asyncio
import logging

from caredio.agents.base import TurnContext
from caredio.agents.culture_expert import CultureExpert
from caredio.errors import EndpointError
from caredio.memory.items import KnowledgeItem
from caredio.run.job import Job

log = logging.getLogger(__name__)

ELICITED_WEIGHT = 0.5


async def elicit_missing(job: Job, expert: CultureExpert, context: TurnContext) -> None:
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
