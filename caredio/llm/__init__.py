"""Reaching models: the OpenAI-compatible client with its retries, limits and structured-output
fallback, endpoint selection and liveness, and the embedded llama.cpp server."""
