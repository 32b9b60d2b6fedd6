"""LangGraph wiring: state, nodes, the convergence router and the run graph."""
