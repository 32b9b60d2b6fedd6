"""Which Chroma client a memory uses — a server (``HttpClient`` from a URL, with its basic
authentication), a directory (``PersistentClient``) or an ephemeral in-process one — and
naming the server when it stops answering mid-run.
"""

from __future__ import annotations

import functools
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from caredio.config.urls import public_url
from caredio.errors import ServiceLost, ServiceUnreachable, UserInputError


def make_client(path: str | Path | None = None, url: str | None = None) -> Any:
    """Chroma client: a server when a URL is given, a directory when a path is, else in-memory."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    quiet = ChromaSettings(anonymized_telemetry=False)
    if url:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise UserInputError(f"memory.url: not an http(s) URL: {public_url(url)!r}")
        port = parsed.port or (443 if parsed.scheme == "https" else 8000)
        settings = _server_settings(url, quiet)  # a URL that cannot work is refused unasked
        _check_server(f"{parsed.scheme}://{parsed.hostname}:{port}", url)
        try:
            return chromadb.HttpClient(host=parsed.hostname, port=port,
                                       ssl=parsed.scheme == "https", settings=settings)
        except ValueError as exc:  # chromadb's way of saying the heartbeat found no server
            if "Could not connect" not in str(exc):
                raise
            raise ServiceUnreachable(f"cannot reach the Chroma server {public_url(url)}; is it "
                                     "running? (--memory-url)") from None
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=quiet)
    # Chroma keeps one in-process system for every EphemeralClient, so two ephemeral memories
    # would share their collections; each gets a database of its own instead.
    shared = chromadb.EphemeralClient(settings=quiet)
    database = f"ephemeral-{uuid.uuid4().hex}"
    chromadb.AdminClient(shared.get_settings()).create_database(database)
    return chromadb.EphemeralClient(settings=quiet, database=database)


def _check_server(base: str, url: str, timeout: float = 10.0) -> None:
    """Any HTTP answer from the server within ``timeout``: a refused, dropped or silent
    connection stops the command at start-up (exit 2) instead of hanging it."""
    import httpx

    parsed = urlparse(url)
    auth = ((unquote(parsed.username), unquote(parsed.password or ""))
            if parsed.username else None)
    try:
        httpx.get(f"{base}/api/v2/heartbeat", timeout=timeout, auth=auth)
    except httpx.TransportError as exc:
        raise ServiceUnreachable(f"cannot reach the Chroma server {public_url(url)} "
                                 f"({type(exc).__name__}); is it running? (--memory-url)") from None


def _server_settings(url: str, settings: Any) -> Any:
    """Credentials in a Chroma server URL (``http://user:password@host``) become Chroma's own
    basic authentication; nothing else in a URL can carry them (a query string is refused)."""
    parsed = urlparse(url)
    if parsed.query or parsed.params:
        raise UserInputError(f"memory.url: a query string is not supported ({public_url(url)}); "
                             "give credentials as http://user:password@host:port")
    if parsed.username is None and parsed.password is None:
        return settings
    if not parsed.username or not parsed.password:
        raise UserInputError(f"memory.url: give both a user and a password for Chroma's basic "
                             f"authentication ({public_url(url)})")
    settings.chroma_client_auth_provider = "chromadb.auth.basic_authn.BasicAuthClientProvider"
    settings.chroma_client_auth_credentials = f"{unquote(parsed.username)}:{unquote(parsed.password)}"
    return settings


class ServerCalls:
    """A Chroma server's client or collection whose calls name the server when it stops
    answering (ServiceLost) instead of raising httpx's bare "ConnectError: Connection refused".

    Every Chroma call of a memory goes through its client or its three collections, so this is
    the one place that knows which service a lost connection belonged to.
    """

    def __init__(self, target: Any, label: str) -> None:
        import httpx  # what Chroma's HTTP client raises when no answer comes

        self._target = target
        self._label = label
        self._lost = httpx.TransportError

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return value(*args, **kwargs)
            except self._lost as exc:  # refused, dropped, timed out: no answer at all
                raise ServiceLost(f"the Chroma server at {self._label} (--memory-url) stopped "
                                  f"answering ({type(exc).__name__}: {exc})") from exc

        return call
