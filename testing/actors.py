"""A stand-in for a Ray actor handle in plain asyncio, for tests of the run's coordinator as
Ray workers see it (caredio/coordination.py, caredio/ray_worker.py) without a Ray cluster."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Generator
from types import SimpleNamespace
from typing import Any


class InProcessActor:
    """``handle.method.remote(*args)`` runs the method as a task of this event loop and returns
    an awaitable of its result, like an ObjectRef.

    As with Ray, a caller that stops waiting (its task is cancelled) does not cancel the call:
    it runs on at the actor. Calls to the ``late`` methods are delivered a few loop turns
    late: an async Ray actor does not run one caller's calls in the order they were sent, so
    nothing may rest on it.
    """

    def __init__(self, target: Any, log: list[tuple[str, tuple[Any, ...]]],
                 late: tuple[str, ...] = ()) -> None:
        self._target, self._log, self._late = target, log, late
        self._calls: set[asyncio.Future[Any]] = set()  # kept alive while they run

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)

        async def delivered(*args: Any) -> Any:
            for _ in range(10 if name in self._late else 0):
                await asyncio.sleep(0)
            self._log.append((name, args))
            result = method(*args)
            return await result if inspect.isawaitable(result) else result

        def remote(*args: Any) -> Ref:
            call = asyncio.ensure_future(delivered(*args))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)
            return Ref(call)

        return SimpleNamespace(remote=remote)


class Ref:
    """What ``remote()`` returns: awaited any number of times, like an ObjectRef; a cancelled
    await leaves the call running (asyncio.shield)."""

    def __init__(self, call: asyncio.Future[Any]) -> None:
        self._call = call

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.shield(self._call).__await__()
