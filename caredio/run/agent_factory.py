"""The three agents of a run, on one endpoint, sharing one request limiter; how its samples are made."""

from __future__ import annotations

from typing import Any

from caredio.agents.contrast_critic import ContrastCritic
from caredio.agents.culture_expert import CultureExpert
from caredio.agents.refiner import Refiner
from caredio.config.settings import ROLES, Settings
from caredio.graph.toolkit import Recipe, Team
from caredio.llm.cache import ResponseCache
from caredio.llm.client import RoleLLM
from caredio.llm.limits import RequestLimiter
from caredio.llm.liveness import Liveness
from caredio.llm.structured import MethodMemory
from caredio.prompts import PromptTemplate


def run_limiter(settings: Settings) -> RequestLimiter:
    """The whole run's bound on requests in flight, requests per minute and 429 pauses."""
    return RequestLimiter(requests_at_once(settings), settings.llm.requests_per_minute,
                          down_after=settings.llm.down_after)


def requests_at_once(settings: Settings) -> int:
    """LLM requests in flight at most. The embedded llama.cpp server answers one at a time:
    more would only queue inside it, where the client's timeout keeps running."""
    return 1 if settings.llm.base_url is None else settings.concurrency


def samples_in_flight(settings: Settings) -> int:
    """Samples optimized at once. Between its calls a sample scores and takes graph steps, so
    with only as many samples as request slots some slots sit idle; 4 per slot keeps them
    busy (C=16, S=64 against a 200 ms stub: wall/ideal 1.24-1.25 against 1.28-1.29 at 2 per
    slot, benchmarks/orchestration.py --samples-per-slot 2,4)."""
    if settings.samples_in_flight is not None:
        return settings.samples_in_flight
    return max(4 * requests_at_once(settings), 4)


def build_agents(
    settings: Settings, templates: dict[str, PromptTemplate], base_url: str, model: str,
    liveness: Liveness | None = None, limiter: Any = None, cache: ResponseCache | None = None,
) -> Team:
    """The three agents, sharing one request limiter (this run's, or a Ray worker's proxy of
    the run's global one) and the response cache, if any."""
    limiter = limiter if limiter is not None else run_limiter(settings)
    methods = MethodMemory(settings.llm.structured_output)
    llms = {role: RoleLLM(role, settings.llm, limiter, methods, base_url, model, liveness, cache)
            for role in ROLES}
    return Team(CultureExpert(llms["culture_expert"], templates),
                ContrastCritic(llms["contrast_critic"], templates), Refiner(llms["refiner"], templates))


def recipe(settings: Settings) -> Recipe:
    """How the run's samples are made and written."""
    return Recipe(settings.loop, settings.strategy, settings.best_of_n, settings.system_prompt)
