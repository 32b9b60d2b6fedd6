"""Which prompt templates differ between runs, and how the steps they drive scored.

For ``caredio compare RUN_A RUN_B``: a template differs when its hash does (run.json
``template_hashes``, else the snapshot's ``prompts/index.json``); ``--diff`` shows the text of
the two snapshots (``RUN/prompts/NAME.txt``). For every template that differs, each run gets a
row of the objective J of the versions that template's step produced, one value per sample
(the mean over its versions of that step), paired across runs by sample and plan entry like
every other row: "did the edited refiner make better rewrites than before, sample by sample".

Which versions a step produced (``step`` in trajectories.jsonl): the expert's question and
answer make the draft (``initial``; the answer template also answers refined questions); the
refiner's templates make ``response`` and ``question`` versions; the critique guides both; the
contrast answers weigh in every version's D. The knowledge template makes no version.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from caredio.rundir.formats import PROMPTS
from caredio.rundir.reader import RunData, open_run
from caredio.stats import paired_difference
from caredio.tools.compare import ALL, Comparison, Measured

# template -> (the step kind as the rows name it, the version steps it produced)
STEP_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "culture_expert_question": ("culture_expert question", ("initial",)),
    "culture_expert_answer": ("culture_expert answer", ("initial", "question", "candidate")),
    "contrast_critic_contrast": ("contrast", ("initial", "question", "response", "candidate")),
    "contrast_critic_critique": ("critique", ("question", "response")),
    "refiner_question": ("refiner question", ("question",)),
    "refiner_response": ("refiner response", ("response",)),
}
MIN_PAIRS = 8  # as for the run rows: fewer paired samples get no verdict


def template_hashes(run: RunData) -> dict[str, str]:
    hashes = run.run.get("template_hashes")
    if isinstance(hashes, dict) and hashes:
        return {str(name): str(value) for name, value in hashes.items()}
    return {str(name): str(entry.get("hash")) for name, entry in run.template_index.items()
            if isinstance(entry, dict)}


def changed_templates(a: Path, b: Path) -> list[tuple[str, str | None, str | None]]:
    """(name, hash in a, hash in b) of every template whose hash differs; None: not in that run."""
    first, second = template_hashes(open_run(a)), template_hashes(open_run(b))
    return [(name, first.get(name), second.get(name)) for name in sorted(first.keys() | second.keys())
            if first.get(name) != second.get(name)]


def template_diff(a: Path, b: Path, name: str) -> str:
    """Unified diff of the template snapshots of two runs ('' when a snapshot is missing)."""
    old, new = a / PROMPTS / f"{name}.txt", b / PROMPTS / f"{name}.txt"
    if not old.exists() or not new.exists():
        return ""
    return "".join(difflib.unified_diff(
        old.read_text(encoding="utf-8").splitlines(keepends=True),
        new.read_text(encoding="utf-8").splitlines(keepends=True), str(old), str(new)))


def metric_of(template: str) -> str:
    return f"J of {STEP_KINDS[template][0]} steps"


def step_values(run_dir: Path, template: str, keys: set[str]) -> dict[str, float]:
    """Per sample (its pairing key among ``keys``): mean J of the versions ``template``'s step made."""
    by_sample = {key.split("#", 1)[0]: key for key in keys}
    steps = STEP_KINDS[template][1]
    scores: dict[str, list[float]] = {}
    for version in open_run(run_dir).trajectories:
        sample = str(version["sample_id"])
        if sample in by_sample and version["step"] in steps and not version.get("rejected"):
            scores.setdefault(by_sample[sample], []).append(float(version["objective"]))
    return {key: sum(values) / len(values) for key, values in scores.items()}


def template_notes(measured: list[Measured]) -> None:
    """Note on every run the templates that differ from the first run's, and add each such
    template's step row (metric :func:`metric_of`, group ``all``) to every run."""
    first = measured[0]
    edited: list[str] = []
    for other in measured[1:]:
        changed = changed_templates(first.path, other.path)
        if changed:
            other.notes.append("templates differ from " + first.label + ": "
                               + ", ".join(name for name, _, _ in changed))
        edited += [name for name, _, _ in changed if name in STEP_KINDS and name not in edited]
        other.details["templates_changed"] = changed
    for run in measured:
        for name in edited:
            run.values[(metric_of(name), ALL)] = step_values(run.path, name, run.details["keys"])


def template_verdicts(comparison: Comparison) -> list[str]:
    """Which templates differ, and per edited step how its outputs scored against the first run's."""
    base = comparison.measured[0]
    lines = []
    for other in comparison.measured[1:]:
        changed = other.details.get("templates_changed") or []
        if not changed:
            continue
        lines.append(f"Templates that differ between {base.label} and {other.label}: "
                     + ", ".join(f"{name} ({a or 'absent'} -> {b or 'absent'})" for name, a, b in changed))
        for name, _, _ in changed:
            if name not in STEP_KINDS:
                continue
            diff, _, _ = paired_difference(base.values.get((metric_of(name), ALL), {}),
                                           other.values.get((metric_of(name), ALL), {}))
            if diff.n == 0:
                lines.append(f"  {metric_of(name)}: no sample has such a step in both runs")
                continue
            where = (f"too few paired samples for a verdict (fewer than {MIN_PAIRS})" if diff.n < MIN_PAIRS
                     else "outside the 95% interval: a real difference" if diff.excludes(0.0)
                     else "0 is inside the 95% interval: no difference shown")
            lines.append(f"  {metric_of(name)}: {other.label} - {base.label} {diff.mean:+.3f} "
                         f"[{diff.low:+.3f}, {diff.high:+.3f}] over {diff.n} paired samples; {where}")
    return lines
