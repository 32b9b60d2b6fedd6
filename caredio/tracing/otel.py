"""Optional OpenTelemetry export: every agent turn as a span, under one span per run.

A turn's span starts when its call started and lasts its latency (retries included), with the
attributes a dashboard groups by: agent, step, sample, round, tokens, retries, the structured-
output method and the error, if any. Spans carry no prompt or reply text (the trace file
has them): nothing a span exports can hold a secret.

Turned on by ``[telemetry] otlp_endpoint`` (an OTLP/gRPC collector, e.g.
``http://localhost:4317``), or by handing :func:`caredio.run.runner.start_run` a tracer provider
of your own (tests use an in-memory exporter). LangChain callbacks and tracers (LangSmith,
Langfuse, OpenInference) are the other way in: they are passed to the run graph and reach
every sample graph and agent call.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from caredio.rundir.formats import TraceLine

log = logging.getLogger(__name__)

TRACER_NAME = "caredio"


def otlp_provider(endpoint: str, service_name: str = "caredio") -> Any:
    """A tracer provider exporting to an OTLP/gRPC collector in batches."""
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        from caredio.errors import UserInputError

        raise UserInputError("telemetry.otlp_endpoint: OpenTelemetry is not installed; "
                             "pip install 'caredio[otel]'") from None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


class SpanSink:
    """A trace sink that turns each agent-turn record into a span under the run's span."""

    def __init__(self, provider: Any, run_id: str) -> None:
        from opentelemetry import trace

        self._trace = trace
        self.tracer = provider.get_tracer(TRACER_NAME)
        self.run_span = self.tracer.start_span("caredio.run", attributes={"caredio.run_id": run_id})
        self._parent = trace.set_span_in_context(self.run_span)

    def emit(self, record: TraceLine) -> None:
        from opentelemetry.trace import Status, StatusCode

        end = time.time_ns()
        start = end - int(record.get("latency_ms") or 0) * 1_000_000
        attributes = {
            "caredio.run_id": record["run_id"], "caredio.sample_id": record["sample_id"],
            "caredio.agent": record["agent"], "caredio.step": record["step"],
            "caredio.round": int(record["round"]), "caredio.template": record.get("template") or "",
            "caredio.retries": int(record.get("retries") or 0),
            "caredio.method": record.get("method") or "",
            "gen_ai.request.model": record.get("model") or "",
            "gen_ai.usage.input_tokens": int(record.get("input_tokens") or 0),
            "gen_ai.usage.output_tokens": int(record.get("output_tokens") or 0),
        }
        span = self.tracer.start_span(f"{record['agent']}.{record['step']}", context=self._parent,
                                      start_time=start, attributes=attributes)
        if record.get("error"):
            span.set_status(Status(StatusCode.ERROR, str(record["error"])[:200]))
        span.end(end_time=end)

    def close(self, status: str) -> None:
        self.run_span.set_attribute("caredio.status", status)
        self.run_span.end()
