"""Where the per-sample LangGraph checkpoints live: the run directory's SQLite file (default),
or a Postgres database shared by every process and machine of a run (``--checkpoint-url``).

With Postgres, ``caredio resume`` works from any machine that can reach the database and a
killed worker loses only its in-flight step. Thread ids there carry the run id
(``run_id/sample_id``): one database serves many runs, whose sample ids repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.sqlite import SqliteSaver

from caredio.config.urls import public_url, url_secrets
from caredio.errors import ServiceUnreachable, UserInputError
from caredio.rundir.formats import CHECKPOINTS

log = logging.getLogger(__name__)
T = TypeVar("T")

CONNECT_TIMEOUT = 10  # seconds: an unreachable store stops the run at start-up, never hangs it


def thread_id(run_id: str, sample_id: str, shared: bool) -> str:
    """A sample's checkpoint thread: its id in the run's own SQLite file, ``run/sample`` in a
    store shared by runs."""
    return f"{run_id}/{sample_id}" if shared else sample_id


def postgres_saver_class() -> Any:
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    except ImportError:
        raise UserInputError("checkpoint_url: the Postgres checkpointer is not installed; "
                             "pip install 'caredio[scale]'") from None
    return AsyncPostgresSaver


def _scrub(text: str, url: str) -> str:
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text


async def check_postgres(url: str) -> None:
    """Connect once with a short timeout: a clear error at start-up instead of a hang later."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise UserInputError(f"checkpoint_url: not a postgresql:// URL: {public_url(url)!r}")
    postgres_saver_class()
    import psycopg

    try:
        connection = await asyncio.wait_for(
            psycopg.AsyncConnection.connect(url, connect_timeout=CONNECT_TIMEOUT),
            CONNECT_TIMEOUT + 5)
    except (psycopg.Error, OSError, TimeoutError) as exc:
        reason = _scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
        raise ServiceUnreachable(f"cannot reach the Postgres checkpoint store {public_url(url)} "
                                 f"({reason}); is it running? (--checkpoint-url)") from None
    await connection.close()


async def setup_postgres(url: str) -> None:
    """Create or migrate the checkpoint tables once, before workers use them."""
    async with postgres_saver_class().from_conn_string(url) as saver:
        await saver.setup()


@contextlib.asynccontextmanager
async def open_checkpointer(checkpoint_url: str | None, run_dir: Path) -> AsyncIterator[Any]:
    """The run's checkpointer, set up and open for the duration of the block."""
    if checkpoint_url:
        await check_postgres(checkpoint_url)
        async with postgres_saver_class().from_conn_string(checkpoint_url) as saver:
            await saver.setup()  # creates or migrates its tables; safe to repeat
            yield saver
        return
    with ThreadedSqliteSaver.open(run_dir / CHECKPOINTS) as saver:
        yield saver


class ThreadedSqliteSaver(SqliteSaver):
    """LangGraph's SQLite checkpointer with its async methods, each one hop to its own thread.

    The same tables and rows as ``AsyncSqliteSaver`` (a run checkpointed by either resumes on
    the other), but aiosqlite makes four thread round trips per write (cursor, statement,
    commit, close), each waking the event loop: a step's checkpoint and writes cost ~10 of
    them. Here a write is one call of the sync saver in the one thread that holds the
    connection (SQLite connections are not shared across threads without care).
    """

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        super().__init__(conn)
        self._executor = executor

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path) -> Iterator[ThreadedSqliteSaver]:
        with ThreadPoolExecutor(1, thread_name_prefix="checkpoints") as executor:
            # Opened, used and closed in the executor's thread only.
            conn = executor.submit(functools.partial(
                sqlite3.connect, str(path), check_same_thread=False)).result()
            saver = cls(conn, executor)
            try:
                executor.submit(saver._prepare).result()
                yield saver
            finally:
                executor.submit(conn.close).result()

    def _prepare(self) -> None:
        self.setup()  # its tables, in write-ahead-log mode
        # In WAL mode NORMAL keeps every commit through the process being killed (what resume
        # needs; the run's JSONL lines are flushed, not synced, alike) and skips an fsync per
        # step: the checkpoint thread's CPU per LLM call 0.48-0.65 -> 0.33-0.42 ms at C=16. A
        # power cut can lose the last steps, never corrupt the file; resume redoes them.
        self.conn.execute("PRAGMA synchronous=NORMAL")

    async def _in_thread(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._in_thread(self.get_tuple, config)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None,
                    ) -> AsyncIterator[CheckpointTuple]:
        def listed() -> list[CheckpointTuple]:
            return list(self.list(config, filter=filter, before=before, limit=limit))

        for item in await self._in_thread(listed):
            yield item

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint,
                   metadata: CheckpointMetadata, new_versions: ChannelVersions) -> RunnableConfig:
        return await self._in_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        await self._in_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._in_thread(self.delete_thread, thread_id)

    async def aget_delta_channel_history(self, *, config: RunnableConfig, channels: Sequence[str]
                                         ) -> Mapping[str, DeltaChannelHistory]:
        return await self._in_thread(self.get_delta_channel_history, config=config,
                                     channels=channels)
