"""Whether an endpoint is alive while a call to it runs long, so a slow call is not abandoned.

On a busy machine a reply can take longer than ``llm.timeout`` while the server works on it.
Giving up then does harm on a single-slot server: it finishes the abandoned reply anyway (a
non-streamed request cannot be stopped; llama-cpp-python checks for a closed connection only
between streamed tokens), so the retry queues behind it, times out too, and the breaker
finally declares a working server down. So when an endpoint has a health URL — the embedded
server always has one — a call is given up only after ``timeout`` seconds in which the health
URL did not answer once; while it answers, the call runs to its end. The breaker
(:class:`caredio.llm.limits.EndpointHealth`) still stops a run whose endpoint stopped answering.

For the embedded llama-cpp-python server the health URL is ``/openapi.json``: served by the
HTTP event loop while the model generates in a worker thread (its ``/v1/models`` waits for the
model lock, so it cannot answer during a generation, and it interrupts streamed ones). The
process itself is ours: when it has exited, the call fails at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from caredio.config.urls import public_url
from caredio.errors import EndpointDown

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PROBE_INTERVAL = 5.0  # seconds between probes while a call runs
MAX_PROBE_SECONDS = 10.0  # a probe answered later than this (or the timeout) does not count


class NoSignOfLife(httpx.TimeoutException):
    """A call given up: the endpoint showed no sign of life for the whole timeout. Transient
    (retried), and counted by the breaker like a refused connection."""


class Liveness:
    """Watches calls to one endpoint through its health URL (and its process, if ours)."""

    def __init__(self, health_url: str, process: subprocess.Popen[bytes] | None = None,
                 exit_error: Callable[[], EndpointDown] | None = None) -> None:
        self.health_url = health_url
        self.process = process
        self.exit_error = exit_error
        self.probes = 0
        self.answered = 0

    def check_process(self) -> None:
        """An embedded server that exited will answer nothing again: say so now."""
        if self.process is not None and self.process.poll() is not None:
            if self.exit_error is not None:  # ours says whether it crashed, and the fix
                raise self.exit_error()
            raise EndpointDown(f"the embedded llama.cpp server exited with code "
                               f"{self.process.returncode}")

    async def alive(self, timeout: float) -> bool:
        """One probe: the health URL answered with a 2xx within ``timeout`` seconds."""
        self.check_process()
        self.probes += 1
        try:
            async with httpx.AsyncClient(timeout=timeout, verify=shared_ssl_context()) as client:
                response = await client.get(self.health_url)
        except httpx.HTTPError as exc:
            log.info("health probe of %s failed: %s", public_url(self.health_url),
                     type(exc).__name__)
            return False
        if response.is_success:
            self.answered += 1
            return True
        log.info("health probe of %s: HTTP %s", public_url(self.health_url), response.status_code)
        return False

    async def watch(self, call: Awaitable[T], timeout: float, request_url: str) -> T:
        """The call's result; it times out only after ``timeout`` seconds without a sign of
        life (an answered probe), never merely for being slow."""
        task: asyncio.Task[T] = asyncio.ensure_future(call)
        interval = min(MAX_PROBE_INTERVAL, timeout / 4)
        last_sign = time.monotonic()
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=interval)
                if done:
                    return task.result()
                probe = asyncio.create_task(self.alive(min(timeout, MAX_PROBE_SECONDS)))
                either: set[asyncio.Task[Any]] = {task, probe}
                done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                if task in done:
                    await _cancel(probe)
                    return task.result()
                if probe.result():
                    last_sign = time.monotonic()
                elif time.monotonic() - last_sign >= timeout:
                    log.warning("%s: no sign of life for %.1fs; giving up the call",
                                public_url(request_url), time.monotonic() - last_sign)
                    raise NoSignOfLife(f"no sign of life from {public_url(request_url)} for "
                                       f"{timeout:g}s")
        finally:
            await _cancel(task)


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """httpx's default context, built once per process for every client we make: a client
    builds its own at every start (~35 ms of CPU here), a probe runs every ``timeout / 4``
    seconds per call in flight, and a run starts a client per role."""
    return httpx.create_ssl_context()


async def _cancel(task: asyncio.Future[Any]) -> None:
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
