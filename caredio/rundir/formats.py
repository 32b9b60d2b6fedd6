"""The run directory's files and the type of every line in them: the one owner of each format.

Writers build these (the graph's nodes, the recorder, the agents' turns) and readers validate
them (:func:`parse_line`, used by :mod:`caredio.rundir.reader`), so a field named here is the
field on disk. Writers write every field; readers require only the ones every tool relies on
(the others are ``NotRequired``), and each type keeps keys it does not name: a run directory
written by a newer release still reads, and so does one written by an older release
(tests/rundir/test_formats.py reads a run written before this module existed).

=====================  ======================  =============================================
file                   line type               written by
=====================  ======================  =============================================
``plan.jsonl``         :class:`PlanEntry`      :meth:`RunRecorder.write_plan`, once
``trajectories.jsonl`` :class:`Version`        :meth:`RunRecorder.write_version` (keyed)
``dataset.jsonl``      :class:`DatasetLine`    :meth:`RunRecorder.write_sample` (keyed)
``selected.jsonl``     :class:`DatasetLine`    :func:`caredio.rundir.recorder.write_selected`
``trace.jsonl``        :class:`TraceLine`      :meth:`RunRecorder.emit`
``run.json``           :class:`RunRecord`      :meth:`RunRecorder.write_run` (atomic rename)
``config.json``        the settings' snapshot  :meth:`RunRecorder.create`
``prompts/``           the templates used      :func:`caredio.rundir.recorder.snapshot_templates`
``review.jsonl``       :class:`ReviewDecision` :mod:`caredio.review.store`, one line per decision
=====================  ======================  =============================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NotRequired, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config

# pydantic validates TypedDicts from typing_extensions only, on Python < 3.12.
from typing_extensions import TypedDict

from caredio.errors import UserInputError

DATASET = "dataset.jsonl"
SELECTED = "selected.jsonl"
TRAJECTORIES = "trajectories.jsonl"
TRACE = "trace.jsonl"
RUN_JSON = "run.json"
CONFIG = "config.json"
CHECKPOINTS = "checkpoints.sqlite"
PLAN = "plan.jsonl"
PROMPTS = "prompts"
TEMPLATE_INDEX = "index.json"  # in PROMPTS: template name -> hash and source
LOCK = ".lock"
RESERVE = ".reserve"
REVIEW = "review.jsonl"  # people's decisions on the samples (caredio review)

SCORES = ("representativeness", "distinctiveness", "objective")
JUDGE_SCORES = ("judge_representativeness", "judge_distinctiveness", "judge_objective")
Status = Literal["running", "completed", "interrupted", "failed"]
# What produced a version: the draft, a refinement of either part, or a best-of-n answer.
Step = Literal["initial", "question", "response", "candidate"]

_OPEN = ConfigDict(extra="allow")  # keys this release does not name are kept, not dropped


@with_config(_OPEN)
class PlanEntry(TypedDict):
    """A planned sample (``plan.jsonl``): what the run graph sends to each optimization."""

    sample_id: str
    culture: str
    topic: str
    contrast: list[str]
    run_id: NotRequired[str]
    topic_name: NotRequired[str]
    topic_description: NotRequired[str]
    index: NotRequired[int]


# Why a segment of an answer scored as it did (DESIGN 3.6), one label each, in this precedence:
LABELS = ("repeated", "copied", "off_topic", "shared", "unsupported", "supported")
LABEL_TEXT = {
    "supported": "supported by the culture's knowledge",
    "shared": "shared with a compared culture",
    "unsupported": "not near anything the culture's memory holds (possible invention)",
    "off_topic": "off-topic: does not bear on the question",
    "repeated": "repeats an earlier sentence",
    "copied": "copied from the knowledge shown to the agents",
}


@with_config(_OPEN)
class SegmentEvidence(TypedDict):
    """One segment (sentence, or item of a short list) of an answer, as the scorer saw it in the
    same pass that computed R and D. Compact: item ids and numbers; texts are resolved on display
    (:mod:`caredio.rundir.evidence`)."""

    label: str  # one of LABELS
    # Where the segment is in the response ([start, end) characters), when the scored segment
    # could be found there; else ``text`` holds it as scored (culture names replaced).
    span: NotRequired[list[int]]
    text: NotRequired[str]
    relevance: float  # to the question, on the similarity scale (0 unrelated, 1 paraphrase)
    weight: float  # how much it counted, in [0, 1] (the question gate; 0 off-topic or copied)
    attribution: float  # probability it is the target culture's, among the compared cultures
    r_share: float  # share of R this segment carried (the core items it expresses best)
    d_share: float  # share of D this segment carried (heard, not stated by a rival, known)
    # The target culture's items that support it best: [item id, similarity], best first
    # (items held out of this sample's evidence are not among them: they do not score it).
    support: list[list[Any]]
    # The strongest item of a compared culture that states it too: [culture, item id (or
    # "contrast answer"), similarity]; absent when no compared culture has one.
    rival: NotRequired[list[Any]]
    shared_with: NotRequired[str]  # label "shared": the compared culture


@with_config(_OPEN)
class Version(TypedDict):
    """One scored version of a sample (a ``trajectories.jsonl`` line). Kept whole in the
    sample's checkpoint too, so a sample continued from it can write any line a dead process
    never wrote."""

    sample_id: str
    round: int  # refinement rounds behind this version; 0 = the expert's first draft
    # "initial", "question" or "response" (loop); "candidate" (best-of-n, where round i is
    # the i-th answer to the same question)
    step: str
    question: str
    response: str
    representativeness: float
    distinctiveness: float
    objective: float
    attribution: NotRequired[dict[str, float]]
    critique: NotRequired[str]
    culture: NotRequired[str]
    topic: NotRequired[str]
    contrast: NotRequired[list[str]]
    contrast_answers: NotRequired[dict[str, str]]
    grounding_ids: NotRequired[list[str]]  # the knowledge items shown to the agents
    score_flags: NotRequired[list[str]]
    missing_core: NotRequired[list[str]]  # what the critique found missing (for a later refinement)
    # A refinement whose R fell more than loop.max_r_drop below the version it rewrote: kept in
    # the trajectory, never the best, never the start of another refinement.
    rejected: NotRequired[bool]
    # The held-out judge's scores (judge.split): recorded, never shown to an agent or routed on.
    judge_representativeness: NotRequired[float]
    judge_distinctiveness: NotRequired[float]
    judge_objective: NotRequired[float]
    evidence: NotRequired[list[SegmentEvidence]]  # per segment of the response, in order


class Message(TypedDict):
    role: str
    content: str


@with_config(_OPEN)
class DatasetMetadata(TypedDict):
    sample_id: str
    culture: str
    objective: float
    run_id: NotRequired[str]
    topic: NotRequired[str]
    contrast: NotRequired[list[str]]
    strategy: NotRequired[str]
    representativeness: NotRequired[float]
    distinctiveness: NotRequired[float]
    attribution: NotRequired[dict[str, float]]
    rounds: NotRequired[int]
    best_round: NotRequired[int]
    best_step: NotRequired[str]
    stop_reason: NotRequired[str]
    versions: NotRequired[int]
    initial_objective: NotRequired[float]
    judge_representativeness: NotRequired[float]
    judge_distinctiveness: NotRequired[float]
    judge_objective: NotRequired[float]
    evidence: NotRequired[list[SegmentEvidence]]  # the best version's, per segment of the answer
    # Set where reviewers decided (caredio/review/binding.py; selected.jsonl and exports): the
    # status, the reviewers, and where one edited the text, the run's original and its scores.
    review: NotRequired[dict[str, Any]]


@with_config(_OPEN)
class DatasetLine(TypedDict):
    """A ``dataset.jsonl`` (and ``selected.jsonl``) line: OpenAI chat fine-tuning format plus
    metadata."""

    messages: list[Message]
    metadata: DatasetMetadata


class CacheUse(TypedDict):
    """A turn's requests answered by the response cache (hits) and sent past it (misses), and
    what the answered ones cost when first asked: tokens saved, never in the turn's tokens."""

    hits: int
    misses: int
    input_tokens: int
    output_tokens: int


@with_config(_OPEN)
class TraceLine(TypedDict):
    """One agent turn (a ``trace.jsonl`` line), written whether the turn succeeded or failed."""

    sample_id: str  # "_memory" for knowledge elicited before planning
    agent: str  # culture_expert, contrast_critic or refiner
    run_id: NotRequired[str]
    round: NotRequired[int]
    step: NotRequired[str]
    template: NotRequired[str]
    template_hash: NotRequired[str]
    messages: NotRequired[list[dict[str, Any]]]
    output: NotRequired[str]
    parsed: NotRequired[dict[str, Any] | None]
    model: NotRequired[str]
    input_tokens: NotRequired[int]
    output_tokens: NotRequired[int]
    latency_ms: NotRequired[int]
    retries: NotRequired[int]
    error: NotRequired[str | None]
    method: NotRequired[str]
    queue_ms: NotRequired[int]
    request_ms: NotRequired[int]
    retry_reasons: NotRequired[list[str]]
    # The response cache (llm.cache): the turn sent nothing (latency_ms 0), and its requests.
    cached: NotRequired[bool]
    cache: NotRequired[CacheUse | None]  # None: the run had no cache


TRACE_FIELDS = tuple(TraceLine.__annotations__)


# What a reviewer can do to a sample; "undo" takes back the decision it names.
Decision = Literal["accept", "reject", "edit", "undo"]


class ReviewText(TypedDict):
    question: str
    response: str


@with_config(_OPEN)
class ReviewDecision(TypedDict):
    """One decision of one reviewer on one sample (a ``review.jsonl`` line), appended the moment
    it is made. The file is a log: a later decision of the same reviewer on the same sample
    replaces the earlier one, an ``undo`` line takes back the decision whose ``id`` it names,
    and nothing is ever rewritten (caredio/review/store.py reads it back)."""

    id: str  # unique per decision; what an undo names
    reviewer: str
    time: str  # ISO 8601, UTC
    sample_id: str
    decision: Decision
    run_id: NotRequired[str]
    reason: NotRequired[str | None]  # a reject's reason (one of the short list, or typed)
    undoes: NotRequired[str]  # undo: the id of the decision taken back
    # The sample's text as the reviewer saw it and as the decision leaves it (an edit changes
    # it; accept and reject leave it as it was), with the scores of each.
    before: NotRequired[ReviewText]
    after: NotRequired[ReviewText]
    scores_before: NotRequired[dict[str, float]]
    scores_after: NotRequired[dict[str, float] | None]
    # An edit, re-scored by the run's own scorer: the evidence of the edited answer, or why it
    # could not be re-scored (the edit is kept all the same).
    evidence_after: NotRequired[list[SegmentEvidence]]
    rescore_note: NotRequired[str]


def dataset_line(spec: PlanEntry, versions: Sequence[Version], best: Version, stop_reason: str,
                 system_prompt: str | None, strategy: str = "loop",
                 judged: Mapping[str, float] | None = None) -> DatasetLine:
    """The dataset line of a finished sample: its best version as a conversation, and how it
    was made and scored."""
    messages: list[Message] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages += [{"role": "user", "content": best["question"]},
                 {"role": "assistant", "content": best["response"]}]
    metadata: dict[str, Any] = {
        "sample_id": spec["sample_id"], "run_id": spec.get("run_id", ""), "culture": spec["culture"],
        "topic": spec["topic"], "contrast": spec["contrast"], "strategy": strategy,
        "representativeness": best["representativeness"],
        "distinctiveness": best["distinctiveness"], "objective": best["objective"],
        "attribution": best.get("attribution", {}),
        # Baselines make candidates, not refinement rounds.
        "rounds": versions[-1]["round"] if strategy == "loop" else 0,
        "best_round": best["round"], "best_step": best["step"],
        "stop_reason": stop_reason, "versions": len(versions),
        "initial_objective": versions[0]["objective"], **(judged or {}),
    }
    if "evidence" in best:
        metadata["evidence"] = best["evidence"]
    return {"messages": messages, "metadata": metadata}  # type: ignore[typeddict-item]


class RoleTokens(TypedDict):
    input: int
    output: int
    calls: int


class Failure(TypedDict):
    sample_id: str
    culture: str
    error: str


class CacheRecord(TypedDict):
    """run.json's ``cache``: the response cache file and what it answered over the run."""

    file: str
    hits: int  # requests answered from the file
    misses: int  # requests sent (their accepted replies stored)
    saved_input_tokens: int  # what the answered requests cost when first asked
    saved_output_tokens: int


@with_config(_OPEN)
class RunRecord(TypedDict, total=False):
    """``run.json``: how the run is going or ended, what it planned and spent, how it was made."""

    run_id: str
    status: Status
    error: str | None
    pid: int
    started_at: float
    finished_at: float
    wall_seconds: float
    updated_at: str
    planned: int
    completed: int
    failed: int
    failures: list[Failure]
    tokens: dict[str, RoleTokens]  # per agent role, requests sent only (cache hits apart)
    cache: CacheRecord | None  # None: no response cache (llm.cache off)
    retries: int
    config_hash: str
    templates_hash: str
    template_hashes: dict[str, str]
    endpoint: str
    model: str
    embedded_model: bool
    requests_at_once: int
    samples_in_flight: int
    threads: dict[str, int]
    executor: str
    embeddings: dict[str, Any]
    strategy: str
    best_of_n: int | None
    llm_seed: int | None
    candidates: list[int]
    judge: dict[str, Any] | None
    ray_workers: int
    ray_address: str
    workers_lost: int
    worker_samples: list[int]  # samples each Ray worker brought to an end, by worker index
    worker_cpu_seconds: list[float | None]


L = TypeVar("L")
_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def parse_line(kind: type[L], value: Any, where: str) -> L:
    """``value`` checked against a line type; a one-line UserInputError naming ``where``
    (``path:line``) and the first field that is missing or wrong."""
    adapter = _ADAPTERS.setdefault(kind, TypeAdapter(kind))
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(line)"
        message = "missing" if first["type"] == "missing" else first["msg"]
        raise UserInputError(f"{where}: {field}: {message}") from None
