"""Human review of a run's samples (DESIGN.md 3.6, ``caredio review``).

* :mod:`.store` — ``review.jsonl``: appending decisions, reading them back (a torn line is
  skipped with a warning), what stands per reviewer and per sample;
* :mod:`.binding` — what select, export, the report and compare make of the decisions;
* :mod:`.merge` — two reviewers' files into one, their disagreements and Cohen's kappa;
* :mod:`.session` — the samples as the app shows them (evidence resolved, versions diffed);
* :mod:`.rescore` — an edit scored by the run's own scorer; :mod:`.items` — item ids to texts;
* :mod:`.feedback` — reviewed samples back into memory (``memory ingest --from-review``);
* :mod:`.app` — the local web app (FastAPI), its token and its headers.
"""
