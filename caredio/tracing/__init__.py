"""Agent-turn records and where they go: trace.jsonl, the log, OpenTelemetry spans."""
