"""Agent-turn records and pluggable sinks.

A turn record is both the audit trail (``trace.jsonl``) and what later prompts are built
from. Records hold the rendered messages and the model's output, never headers or keys.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

TRACE_FIELDS = (
    "run_id", "sample_id", "round", "agent", "step", "template", "template_hash", "messages",
    "output", "parsed", "model", "input_tokens", "output_tokens", "latency_ms", "retries", "error",
)


class TraceSink(Protocol):
    def emit(self, record: dict[str, Any]) -> None: ...


class JsonlTraceSink:
    """Appends one line per turn and flushes, so a crash never leaves half a record."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def emit(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()


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


class ListSink:
    """Keeps records in memory (tests and programmatic use)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def emit(self, record: dict[str, Any]) -> None:
        self.records.append(record)
