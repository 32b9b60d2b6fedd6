"""Agent-turn records and pluggable sinks.

A turn record (:class:`caredio.rundir.formats.TraceLine`) is both the audit trail
(``trace.jsonl``) and what later prompts are built from. Records hold the rendered messages
and the model's output, never headers or keys.
"""

from __future__ import annotations

import logging
from typing import Protocol

from caredio.rundir.formats import TraceLine

log = logging.getLogger(__name__)



class TraceSink(Protocol):
    def emit(self, record: TraceLine) -> None: ...


class LoggingTraceSink:
    def emit(self, record: TraceLine) -> None:
        log.debug("turn %s/%s round %s: %s tokens in, %s out, %s ms%s",
                  record["sample_id"], record["agent"], record["round"], record["input_tokens"],
                  record["output_tokens"], record["latency_ms"],
                  f", error: {record['error']}" if record["error"] else "")


class MultiSink:
    def __init__(self, *sinks: TraceSink) -> None:
        self.sinks = list(sinks)

    def emit(self, record: TraceLine) -> None:
        for sink in self.sinks:
            sink.emit(record)

