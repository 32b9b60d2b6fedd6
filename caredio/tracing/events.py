"""Progress events: what a run (or an eval) tells the display while it works, declared once.

Display only — a run's records are its files, not these — so a handler that fails is logged
and the run goes on (:func:`guarded`).
"""

from __future__ import annotations

import logging
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

EventKind = Literal[
    # a run
    "endpoint",  # the endpoint and model the run uses
    "planned",  # samples planned, per culture
    "sample_started", "turn_started", "turn", "version", "sample_done", "sample_skipped",
    "sample_failed",
    "worker_lost",  # a Ray worker died; its sample is retried elsewhere
    # an eval
    "prepared", "answered", "item_failed",
]


class OnEvent(Protocol):
    def __call__(self, kind: EventKind, data: dict[str, Any], /) -> None: ...


def ignore(kind: EventKind, data: dict[str, Any], /) -> None:
    """The handler of a run nobody watches."""


def guarded(on_event: OnEvent) -> OnEvent:
    """Progress callbacks are display only: a failing one is logged, never stops the run."""
    def guarded_event(kind: EventKind, data: dict[str, Any], /) -> None:
        try:
            on_event(kind, data)
        except Exception:
            log.exception("progress display failed on a %s event (the run goes on)", kind)

    return guarded_event
