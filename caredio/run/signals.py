"""Stopping a run: SIGTERM stops it like Ctrl-C, and both surface as KeyboardInterrupt."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
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


def run_coroutine(coro: Any) -> Any:
    """asyncio.run; a SIGTERM-cancelled run surfaces like Ctrl-C (KeyboardInterrupt)."""
    try:
        return asyncio.run(coro)
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
