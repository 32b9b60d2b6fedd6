"""Test doubles (FAKE servers and embedders) and small job builders. Never installed:
the runtime package holds no fakes, and `caredio local-llm` serves the real model only."""
