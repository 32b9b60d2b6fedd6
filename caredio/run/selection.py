"""The run's last step: select among its dataset lines and accept the chosen into memory."""

from __future__ import annotations

from pathlib import Path

from caredio.conversation import question_response
from caredio.memory.selection import select
from caredio.run.job import Job
from caredio.rundir.reader import open_run
from caredio.rundir.recorder import write_selected


def accept_into_memory(job: Job, run_dir: Path) -> None:
    """Selection over the run's dataset, and the selected samples go into memory's samples."""
    lines = open_run(run_dir).dataset
    if not lines:
        return
    # Same rule as `caredio select`: never keep a near-duplicate of what earlier runs accepted.
    prior_ids, prior_vectors = job.memory.samples.embeddings(exclude_run=run_dir.name)
    picks = select(lines, job.memory.embedder, budget=len(lines), per_culture=True,
                   prior_ids=prior_ids, prior_vectors=prior_vectors if prior_ids else None)
    chosen = [lines[p.index] for p in picks]
    write_selected(run_dir, chosen)
    job.memory.samples.add([
        dict(zip(("question", "response"), question_response(line["messages"]), strict=True),
             **line["metadata"])
        for line in chosen
    ])
