"""How fast a run may call its endpoint, and whether the endpoint is still there.

:class:`RequestLimiter` is shared by every role of a run: it bounds the LLM requests in
flight across all samples (``--concurrency``), spaces request starts for an optional
requests-per-minute limit, and pauses new requests after a 429 with ``Retry-After``.
:class:`EndpointHealth` notices an endpoint that went down for good.
"""

from __future__ import annotations

import asyncio
import time

from caredio.config.urls import public_url
from caredio.errors import EndpointDown

_sleep = asyncio.sleep  # a seam for tests


class EndpointHealth:
    """Notices an endpoint that went down for good, so a run stops instead of failing slowly.

    Every call that could not connect (or timed out) counts; any answer resets the count.
    The endpoint is declared down once ``min_failures`` calls in a row failed and nothing
    has answered for ``down_after`` seconds.
    """

    def __init__(self, down_after: float, min_failures: int = 3) -> None:
        self.down_after = down_after
        self.min_failures = min_failures
        self.failures = 0
        self.last_ok = time.monotonic()
        self.last_error = ""

    def ok(self) -> None:
        self.failures = 0
        self.last_ok = time.monotonic()

    def failed(self, description: str) -> None:
        self.failures += 1
        self.last_error = description

    def check(self, url: str) -> None:
        silent = time.monotonic() - self.last_ok
        if self.failures >= self.min_failures and silent >= self.down_after:
            raise EndpointDown(
                f"{public_url(url)} is down: no answer for {silent:.0f}s, "
                f"{self.failures} calls in a row failed (last: {self.last_error})"
            )


class RequestLimiter:
    """Bounds in-flight requests across the whole run, and optionally requests per minute.

    A 429 with ``Retry-After`` pauses every new request until then, not just the one that
    got it: the endpoint's limit is shared by the whole run.
    """

    def __init__(self, concurrency: int, requests_per_minute: float | None = None,
                 down_after: float = 60.0) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next_start = 0.0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self._down_after = down_after
        self.health: dict[str, EndpointHealth] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    def endpoint_health(self, url: str) -> EndpointHealth:
        return self.health.setdefault(url, EndpointHealth(self._down_after))

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def __aenter__(self) -> RequestLimiter:
        await self._slots.acquire()
        try:
            while (wait := self._paused_until - time.monotonic()) > 0:
                await _sleep(wait)
            if self._interval:
                async with self._lock:
                    now = time.monotonic()
                    wait = self._next_start - now
                    self._next_start = max(now, self._next_start) + self._interval
                if wait > 0:
                    await _sleep(wait)
        except BaseException:
            self._slots.release()
            raise
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.in_flight -= 1
        self._slots.release()
