"""Which endpoint errors are worth retrying, how long the server asked us to wait, and which
stop a run: the policy RoleLLM's retries follow."""

from __future__ import annotations

import httpx
import openai

TRANSIENT = (
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.RateLimitError,
    openai.InternalServerError,
    httpx.TransportError,
)
TRANSIENT_STATUS = {408, 409, 425, 429}  # request timeout, conflict, too early, rate limited
MAX_RETRY_AFTER = 300.0


def is_transient(exc: BaseException) -> bool:
    """Worth retrying as it is: timeouts, dropped connections, 429 and 5xx."""
    if isinstance(exc, TRANSIENT):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code in TRANSIENT_STATUS


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``), if any."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(header)
        try:
            if value is not None:
                return min(MAX_RETRY_AFTER, max(0.0, float(value) * scale))
        except ValueError:
            continue  # an HTTP date: fall back to our own backoff
    return None


def is_method_rejection(exc: BaseException) -> bool:
    """A status error that says 'this request shape is not supported' rather than 'try later'."""
    if isinstance(exc, openai.RateLimitError):
        return False
    return isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError,
                            openai.InternalServerError, openai.NotFoundError))


def is_fatal(exc: BaseException) -> bool:
    """Errors every later call would get too: bad credentials, no quota left."""
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return True
    quota = getattr(exc, "code", None) == "insufficient_quota"
    return isinstance(exc, openai.RateLimitError) and quota


def describe(exc: BaseException) -> str:
    """``InternalServerError (500)``: the SDK's class name (not a wrapper's) and the status."""
    name = next((c.__name__ for c in type(exc).__mro__ if c.__module__.startswith("openai")),
                type(exc).__name__)
    status = getattr(exc, "status_code", None)
    return name + (f" ({status})" if status else "")
