"""Endpoint URLs: checked before anything starts, and never written or logged with their secrets.

A URL may carry credentials or a key in its query string; :func:`public_url` is what records
and logs show, :func:`redact_url` what a run's config snapshot keeps (``caredio resume`` then asks
for the URL again), :func:`url_secrets` what the log filter scrubs.
"""

from __future__ import annotations

import base64
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "REDACTED"


def _shown_url(url: str) -> str:
    """A URL as an error message may show it (quoted): never a user, password or query string."""
    parts = urlsplit(url)
    if parts.netloc:
        return repr(urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "")))
    # Without "scheme://" nothing tells a password from a path: show it only when it cannot hold one.
    return repr(url) if "@" not in url and "?" not in url else "the value (not shown: it may hold credentials)"


def check_http_url(url: str | None, example: str) -> str | None:
    """``url`` when it is an http(s) URL with a host (and a valid port), else ValueError.

    Checked with the settings, before anything starts: httpx would otherwise report
    "notaurl" only when first called, as an unreachable endpoint (UnsupportedProtocol), after
    the run directory exists. Empty means unset, as the code that uses these fields reads it.
    """
    if not url:
        return url
    url = url.strip()
    parts = urlsplit(url)
    shown = _shown_url(url)
    if "://" not in url:
        raise ValueError(f"{shown} is not a URL: give http:// or https:// and a host, e.g. {example}")
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{shown}: the scheme must be http or https, not {parts.scheme!r} "
                         f"(e.g. {example})")
    if not parts.hostname:
        raise ValueError(f"{shown} has no host (e.g. {example})")
    try:
        parts.port  # noqa: B018 - parsing the port is the check: it raises on "x:abc" or "x:99999"
    except ValueError as exc:
        raise ValueError(f"{shown}: bad port ({exc})") from None
    return url


def public_url(url: str) -> str:
    """A URL fit for records and logs: no user, password or query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def has_secrets(url: str | None) -> bool:
    """Whether a URL carries credentials (user, password) or a query string (keys hide there)."""
    if not url:
        return False
    parts = urlsplit(url)
    return bool(parts.username or parts.password or parts.query)


def redact_url(url: str | None) -> str | None:
    """The URL to write to disk: with secrets, its public part marked ``REDACTED``."""
    if url is None or not has_secrets(url):
        return url
    parts = urlsplit(public_url(url))
    return urlunsplit((parts.scheme, f"{REDACTED}@{parts.netloc}", parts.path, "", ""))


def is_redacted(url: str | None) -> bool:
    return bool(url) and urlsplit(url).username == REDACTED


def url_secrets(url: str | None) -> list[str]:
    """What of a URL must never be logged: ``user:password@``, the password, its Basic token."""
    if not url or not has_secrets(url):
        return []
    parts = urlsplit(url)
    found = [parts.query] if parts.query else []
    if parts.username or parts.password:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found += [userinfo + "@", base64.b64encode(
            f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()).decode()]
        if parts.password:
            found += [parts.password, unquote(parts.password)]
    return [secret for secret in found if len(secret) >= 4]
