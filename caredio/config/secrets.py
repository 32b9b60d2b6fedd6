"""Keeping a run's secrets out of its logs: API keys from the environment and the secret parts
of its URLs, scrubbed from every log record while the run goes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from caredio.config.settings import Settings
from caredio.config.urls import url_secrets


class SecretFilter(logging.Filter):
    """Scrubs given secrets from every record a handler emits, whoever logged it.

    Third-party loggers (httpx logs each request URL, credentials included) are not ours
    to change, so the filter sits on the handlers.
    """

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, ()
        return True


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret a run of these settings knows: API keys from the environment, URL parts."""
    keys = [os.environ.get(settings.llm.api_key_env), os.environ.get("CAREDIO_API_KEY")]
    urls = [settings.llm.base_url, settings.memory.url, settings.checkpoint_url,
            *(role.base_url for role in settings.llm.roles.values())]
    found = [key for key in keys if key and len(key) >= 4]
    for url in urls:
        found += url_secrets(url)
    return found


@contextlib.contextmanager
def secrets_scrubbed(settings: Settings) -> Iterator[None]:
    """While a run goes: no handler of the root logger writes one of the run's secrets."""
    secret_filter = SecretFilter(settings_secrets(settings))
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(secret_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(secret_filter)
