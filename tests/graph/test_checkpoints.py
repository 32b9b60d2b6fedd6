"""The run directory's SQLite checkpointer: LangGraph's own SqliteSaver with each async method
one hop to the one thread that holds the connection (caredio.graph.checkpoints).

Real SQLite files and a real LangGraph graph; no fakes.
"""

from __future__ import annotations

import asyncio
import operator
import threading
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from caredio.graph.checkpoints import ThreadedSqliteSaver, open_checkpointer


class Counted(TypedDict):
    seen: Annotated[list[str], operator.add]


def _graph(checkpointer: Any) -> Any:
    builder = StateGraph(Counted)
    builder.add_node("first", lambda state: {"seen": ["first"]})
    builder.add_node("second", lambda state: {"seen": ["second"]})
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder.compile(checkpointer=checkpointer, interrupt_before=["second"])


def test_a_graph_checkpointed_here_stops_and_resumes_with_every_async_method(tmp_path: Path) -> None:
    """aput/aput_writes through a real graph, aget_tuple/alist reading back, adelete_thread:
    red if any async method is missing (LangGraph's base raises NotImplementedError) or reads
    another thread's rows."""
    config: Any = {"configurable": {"thread_id": "s1"}}
    other: Any = {"configurable": {"thread_id": "s2"}}

    async def run() -> tuple[Any, ...]:
        async with open_checkpointer(None, tmp_path) as saver:
            assert isinstance(saver, ThreadedSqliteSaver)
            graph = _graph(saver)
            await graph.ainvoke({"seen": []}, config)  # stops before "second"
            await graph.ainvoke({"seen": ["x"]}, other)
            paused = await graph.aget_state(config)
            finished = await graph.ainvoke(None, config)  # resumes from the checkpoint
            history = [c async for c in saver.alist(config)]
            await saver.adelete_thread("s1")
            gone = await saver.aget_tuple(config)
            kept = await saver.aget_tuple(other)
        return paused, finished, history, gone, kept

    paused, finished, history, gone, kept = asyncio.run(run())
    assert paused.next == ("second",) and paused.values == {"seen": ["first"]}
    assert finished == {"seen": ["first", "second"]}
    assert len(history) == 4  # input, after START, after first, after second
    assert {c.config["configurable"]["thread_id"] for c in history} == {"s1"}
    assert gone is None
    assert kept is not None and kept.checkpoint["channel_values"]["seen"] == ["x", "first"]


def test_the_connection_is_used_in_one_thread_never_the_event_loop(tmp_path: Path) -> None:
    """SQLite calls block: on the event loop they would stall every sample. Red if an async
    method runs the sync saver inline, or if calls spread over several threads."""
    used: set[str] = set()

    async def run() -> str:
        async with open_checkpointer(None, tmp_path) as saver:
            saver.conn.set_trace_callback(lambda _: used.add(threading.current_thread().name))
            graph = _graph(saver)
            config: Any = {"configurable": {"thread_id": "s1"}}
            await graph.ainvoke({"seen": []}, config)
            await graph.ainvoke(None, config)
            await graph.aget_state(config)
            return threading.current_thread().name

    loop_thread = asyncio.run(run())
    assert len(used) == 1 and loop_thread not in used
    assert next(iter(used)).startswith("checkpoints")


def test_a_run_checkpointed_by_the_aiosqlite_saver_resumes_here(tmp_path: Path) -> None:
    """Runs interrupted under earlier versions (AsyncSqliteSaver, the same tables) resume:
    red if the tables or the serialization differ."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    config: Any = {"configurable": {"thread_id": "s1"}}

    async def run() -> Any:
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "checkpoints.sqlite")) as old:
            await _graph(old).ainvoke({"seen": []}, config)
        async with open_checkpointer(None, tmp_path) as saver:
            return await _graph(saver).ainvoke(None, config)

    assert asyncio.run(run()) == {"seen": ["first", "second"]}
