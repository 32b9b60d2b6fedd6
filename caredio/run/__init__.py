"""A run from start to end: the job and its plan, the run graph's execution and run.json's life
cycle, the agents it builds, elicitation, the run-end selection, resume and signals."""
