"""The LLM endpoint of a run: the configured one (checked first), or the embedded server,
started for the run and stopped on every exit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from caredio.config.settings import Settings
from caredio.config.urls import public_url
from caredio.errors import EndpointError
from caredio.llm.cache import ResponseCache, open_cache
from caredio.llm.embedded import LocalLLMServer, packaged_gguf
from caredio.llm.liveness import Liveness, shared_ssl_context
from caredio.threads import llm_threads


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
               Liveness(server.health_url, server.process, server.exit_error))
    finally:
        server.stop()


async def preflight(base_url: str, timeout: float = 10.0) -> None:
    """Fail fast, with a clear message, when the endpoint is not there at all.

    Any HTTP answer will do (some servers have no ``/models``, or want a key for it); only
    a refused, dropped or silent connection stops the run before it starts.
    """
    try:
        async with httpx.AsyncClient(timeout=timeout, verify=shared_ssl_context()) as client:
            await client.get(base_url.rstrip("/") + "/models")
    except httpx.TransportError as exc:
        raise EndpointError(
            f"cannot reach the LLM endpoint {public_url(base_url)} ({type(exc).__name__}); "
            "is the server running? (--base-url)"
        ) from None


def open_run_cache(settings: Settings, base_url: str) -> ResponseCache | None:
    """The response cache ``llm.cache`` names (None when off), knowing the endpoint at
    ``base_url`` by what decides its replies: its public URL, or for the embedded server, which
    listens on a new port at every start, the model file it serves (name and size)."""
    cache = open_cache(settings.llm.cache)
    if cache is not None and not settings.llm.base_url:
        gguf = Path(settings.llm.gguf) if settings.llm.gguf else packaged_gguf()
        size = gguf.stat().st_size if gguf.is_file() else 0
        cache.alias(public_url(base_url), f"embedded:{gguf.name}:{size}")
    return cache
