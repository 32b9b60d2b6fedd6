"""The response cache: an accepted reply to a request already sent is not paid for again.

Opt-in (``[llm] cache`` or ``--cache PATH``). One SQLite file holds every reply, keyed by a
SHA-256 of everything that determines it: the endpoint (its public URL: never a user,
password, query string or API key), the model, the messages as sent, the sampling fields
(temperature, output limit, the per-request seed), the structured-output method and its
schema, and where the request stands among identical ones (the turn's seed key, i.e. sample
and round or best-of-n candidate; else how often this process sent that prompt). A rerun of
the same plan from the same memory so sends nothing before the first input that changed.

Only accepted replies are stored: a reply the output checks refuse (agents/checks.py) is
re-asked and never cached, nor is an error; a stored reply the checks refuse today is dropped
and asked again. The file is shared safely by concurrent runs (WAL journal, busy timeout, one
short write transaction per reply); a file that is not a CAReDiO cache, or is damaged, is a
one-line :class:`~caredio.errors.UserInputError` before any run directory exists.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, message_to_dict, messages_from_dict

from caredio.errors import UserInputError

DEFAULT_PATH = ".caredio/llm-cache.sqlite"
FORMAT = "caredio-llm-cache"
VERSION = 1
BUSY_TIMEOUT_MS = 30_000  # another run's write holds the lock for milliseconds, never this long
_META = "caredio_cache_meta"
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {_META} (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, endpoint TEXT NOT NULL, "
    "model TEXT NOT NULL, reply TEXT NOT NULL, input_tokens INTEGER NOT NULL, "
    "output_tokens INTEGER NOT NULL, created_at REAL NOT NULL)",
)


@dataclass(frozen=True)
class Hit:
    """A stored reply and the tokens it cost when it was first asked."""

    message: AIMessage
    input_tokens: int
    output_tokens: int


def cache_path(setting: bool | str | None) -> Path | None:
    """The file ``llm.cache`` names: None when off, the default file for ``true``."""
    if setting is None or setting is False:
        return None
    return Path(DEFAULT_PATH if setting is True else str(setting)).expanduser()


def request_key(endpoint: str, model: str, messages: list[dict[str, Any]],
                request: dict[str, Any], sampling: dict[str, Any], method: str,
                place: str) -> str:
    """The cache key of one request: a digest, so no prompt text is stored in the key column.

    ``endpoint`` must be the public URL (caredio.config.urls.public_url): the key of a reply
    never depends on, nor reveals, credentials. ``request`` holds the method's fields (the
    schema as a tool or response format) and the per-request seed; ``place`` tells identical
    requests of different turns or candidates apart.
    """
    blob = json.dumps({"v": VERSION, "endpoint": endpoint, "model": model, "messages": messages,
                       "request": request, "sampling": sampling, "method": method,
                       "place": place}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """One SQLite cache file, used by every role of a run (and by concurrent runs)."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._aliases: dict[str, str] = {}
        # One connection per process, used from the event loop and from worker threads alike.
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path) -> ResponseCache:
        """Open (or create) the cache file; a foreign or damaged file is a UserInputError."""
        path = Path(path)
        if path.is_dir():
            raise UserInputError(f"{path}: llm.cache: is a directory; give a file path, e.g. "
                                 f"{DEFAULT_PATH}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000,
                                         check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise UserInputError(f"{path}: llm.cache: cannot open the cache file: {exc}") from None
        try:
            _prepare(connection, path)
        except BaseException:
            connection.close()
            raise
        return cls(path, connection)

    def alias(self, url: str, identity: str) -> None:
        """Key replies of the endpoint at ``url`` (a public URL) by ``identity`` instead: the
        embedded server listens on a new loopback port at every start, while its replies
        depend on the model file it serves."""
        self._aliases[url] = identity

    def endpoint(self, url: str) -> str:
        """What a request key says of the endpoint at the public URL ``url``."""
        return self._aliases.get(url, url)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, key: str) -> Hit | None:
        with self._lock:
            row = self._db.execute("SELECT reply, input_tokens, output_tokens FROM replies "
                                   "WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            message = messages_from_dict([json.loads(row[0])])[0]
        except (ValueError, KeyError, TypeError):
            self.drop(key)  # a row this release cannot read is a miss, asked again and replaced
            return None
        if not isinstance(message, AIMessage):
            self.drop(key)
            return None
        return Hit(message, int(row[1]), int(row[2]))

    def put(self, key: str, message: AIMessage, endpoint: str, model: str) -> None:
        """Store an accepted reply (the latest wins when two runs answered the same key)."""
        usage: dict[str, Any] = dict(message.usage_metadata or {})
        reply = json.dumps(message_to_dict(message), ensure_ascii=False)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, endpoint, model, reply, int(usage.get("input_tokens", 0)),
                 int(usage.get("output_tokens", 0)), time.time()))

    def drop(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM replies WHERE key = ?", (key,))

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])


def _prepare(connection: sqlite3.Connection, path: Path) -> None:
    """WAL and a busy timeout (concurrent runs wait for each other's short writes instead of
    failing), the tables on a new file, and the format check on an existing one."""
    try:
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and _META not in tables:
            shown = ", ".join(sorted(tables)[:3])
            raise UserInputError(f"{path}: llm.cache: not a CAReDiO response cache (an SQLite "
                                 f"database with tables {shown}); give another file")
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")  # WAL: a power cut loses the last
        # replies at most, never the file; an fsync per reply would cost more than a lookup
        connection.execute("BEGIN IMMEDIATE")  # two runs creating the file at once: one wins
        try:
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.execute(f"INSERT OR IGNORE INTO {_META} VALUES ('format', ?), "
                               "('version', ?)", (FORMAT, str(VERSION)))
            meta = dict(connection.execute(f"SELECT name, value FROM {_META}").fetchall())
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
        raise UserInputError(f"{path}: llm.cache: not a usable CAReDiO response cache ({exc}); "
                             "move it away or give another file") from None
    if meta.get("format") != FORMAT:
        raise UserInputError(f"{path}: llm.cache: not a CAReDiO response cache "
                             f"(format {meta.get('format')!r}); give another file")
    if meta.get("version") != str(VERSION):
        raise UserInputError(f"{path}: llm.cache: written by another CAReDiO release (cache "
                             f"format {meta.get('version')}, this one reads {VERSION}); give "
                             "another file")


def open_cache(setting: bool | str | None) -> ResponseCache | None:
    """The cache ``llm.cache`` names, opened; None when off."""
    path = cache_path(setting)
    return ResponseCache.open(path) if path is not None else None
