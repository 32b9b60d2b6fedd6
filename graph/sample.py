"""The per-sample optimization graph: draft -> critique -> (refine -> critique)* -> finalize.

Wiring only: the nodes are built in graph/nodes.py from the one :class:`Toolkit` this factory
takes, with the checkpointer, so nothing is compiled or connected at import time.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from caredio.graph.nodes import (
    after_refinement,
    critique_node,
    draft_node,
    finalize_node,
    refine_question_node,
    refine_response_node,
)
from caredio.graph.routing import FINALIZE, REFINE_QUESTION, REFINE_RESPONSE
from caredio.graph.state import SampleState
from caredio.graph.toolkit import Toolkit


def build_sample_graph(toolkit: Toolkit, checkpointer: Any = None) -> Any:
    """Compile the per-sample loop graph with the given tools and checkpointer."""
    builder = StateGraph(SampleState)
    builder.add_node("draft", draft_node(toolkit))
    builder.add_node("critique", critique_node(toolkit))
    builder.add_node(REFINE_QUESTION, refine_question_node(toolkit))
    builder.add_node(REFINE_RESPONSE, refine_response_node(toolkit))
    builder.add_node(FINALIZE, finalize_node(toolkit))
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "critique")
    builder.add_conditional_edges(
        "critique", lambda state: state["next_step"], [REFINE_QUESTION, REFINE_RESPONSE, FINALIZE]
    )
    for refine in (REFINE_QUESTION, REFINE_RESPONSE):
        builder.add_conditional_edges(refine, after_refinement, ["critique", FINALIZE])
    builder.add_edge(FINALIZE, END)
    return builder.compile(checkpointer=checkpointer, name="optimize_sample")
