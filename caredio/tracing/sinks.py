"""Agent-turn records and pluggable sinks.

A turn record is both the audit trail (``trace.jsonl``) and what later prompts are built
from. Records hold the rendered messages and the model's output, never headers or keys.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)

TRACE_FIELDS = (
    "run_id", "sample_id", "round", "agent", "step", "template", "template_hash", "messages",
    "output", "parsed", "model", "input_tokens", "output_tokens", "latency_ms", "request_ms", "queue_ms",
    "retries", "error",
)


class TraceSink(Protocol):
    def emit(self, record: dict[str, Any]) -> None: ...


class LoggingTraceSink:
    def emit(self, record: dict[str, Any]) -> None:
        log.debug("turn %s/%s round %s: %s tokens in, %s out, %s ms%s",
                  record["sample_id"], record["agent"], record["round"], record["input_tokens"],
                  record["output_tokens"], record["latency_ms"],
                  f", error: {record['error']}" if record["error"] else "")


class MultiSink:
    def __init__(self, *sinks: TraceSink) -> None:
        self.sinks = list(sinks)

    def emit(self, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.emit(record)

