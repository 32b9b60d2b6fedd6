"""The three agents: culture expert, contrast critic and refiner, one module each. They do not
know the graph."""
