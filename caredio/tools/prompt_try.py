"""``caredio prompts try``: one template, on one recorded sample's inputs at one step, in seconds.

The inputs a sample had at a step are rebuilt from the run directory: the plan entry (culture,
topic, contrast), the trajectory (questions, answers, scores, critiques, contrast answers and
the ids of the knowledge shown), the trace (the earlier questions a draft was told to avoid),
and the memory (the shown knowledge's texts, by id; for an ephemeral memory the packaged
starter pack). They are checked by rendering the run's own snapshot of the template and
comparing it with the messages the trace says were sent: the output says whether the rebuilt
inputs are exactly what the run used, and where they differ.

The user's template (``--prompts DIR`` as ``caredio run`` takes it, else the packaged one) is
rendered with those inputs and sent once to the run's endpoint (or another; the embedded
llama.cpp server when the run used it), with the run's seed for that turn and the structured
output method the run's turn used. The reply is checked as a run checks it, without the
re-asks a run would make; an answer (the expert's answer, the refiner's rewrite) is scored
by the run's scorer on the run's memory, with its per-segment evidence. Beside each: what the
run had at that step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from caredio.agents.checks import answer_rules, question_rules
from caredio.agents.contrast_critic import ContrastAnswer, Critique
from caredio.agents.culture_expert import ElicitedKnowledge, ExpertAnswer, ExpertQuestion
from caredio.agents.refiner import RefinedQuestion, RefinedResponse
from caredio.config.settings import Settings
from caredio.config.urls import public_url
from caredio.errors import ModelOutputError, UserInputError
from caredio.graph.routing import base_version
from caredio.llm.client import CallResult, RoleLLM
from caredio.llm.endpoint import endpoint
from caredio.llm.limits import RequestLimiter
from caredio.llm.structured import MethodMemory, describe
from caredio.memory.contents import item_texts
from caredio.memory.embeddings import Embedder
from caredio.memory.questions import AVOID_LIMIT
from caredio.prompts import SPECS, PromptTemplate, load_templates
from caredio.run.job import EPHEMERAL, load_starter_pack, loop_parts, open_memory
from caredio.run.resumption import resumed_settings
from caredio.rundir.formats import PROMPTS, PlanEntry, TraceLine, Version
from caredio.rundir.reader import RunData, open_run

SCHEMAS: dict[str, type[BaseModel]] = {
    "culture_expert_question": ExpertQuestion, "culture_expert_answer": ExpertAnswer,
    "culture_expert_knowledge": ElicitedKnowledge, "contrast_critic_contrast": ContrastAnswer,
    "contrast_critic_critique": Critique, "refiner_question": RefinedQuestion,
    "refiner_response": RefinedResponse,
}
ANSWER_FIELD = {"culture_expert_answer": "answer", "refiner_response": "response"}  # scored replies
HISTORY = 4  # versions the refiner is shown (graph/nodes.py keeps the last four)


@dataclass
class Call:
    """One request to make: the template's inputs, and what the run sent and got there."""

    variables: dict[str, Any]
    rules: dict[str, Any] | None
    run_turn: TraceLine | None
    exact: bool = False  # the run's template, rendered with ``variables``, is what it sent
    difference: str = ""  # else the first line that differs


@dataclass
class Outcome:
    call: Call
    messages: list[dict[str, str]]
    reply: str = ""
    parsed: dict[str, Any] | None = None
    verdict: str = ""  # "accepted", or "refused: ..." (the checks), or "error: ..."
    scores: dict[str, Any] | None = None  # R, D, J and the evidence of an answer
    seconds: float = 0.0


@dataclass
class Tried:
    template: PromptTemplate  # the one tried
    run_template: PromptTemplate  # the run's snapshot
    sample_id: str
    round: int
    endpoint: str = ""
    model: str = ""
    outcomes: list[Outcome] = field(default_factory=list)
    run_version: Version | None = None  # the version the run made at that step, with its scores
    notes: list[str] = field(default_factory=list)


def try_template(run_dir: str | Path, name: str, sample_id: str, round_: int | None = None,
                 prompts_dir: str | Path | None = None, base_url: str | None = None,
                 model: str | None = None, embedder: Embedder | None = None) -> Tried:
    """Render ``name`` with the inputs ``sample_id`` had at ``round_``, send it, check and score."""
    if name not in SPECS:
        raise UserInputError(f"prompts try: unknown template '{name}' (known: {', '.join(SPECS)})")
    if name == "culture_expert_knowledge":
        raise UserInputError("prompts try: culture_expert_knowledge runs before any sample exists "
                             "(knowledge elicitation); try it with `caredio memory` or a run")
    run = open_run(run_dir)
    settings = resumed_settings(run.dir, base_url=base_url)
    if model:
        settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"model": model})})
    spec = _plan_entry(run, sample_id)
    turns = [t for t in run.turns if t.get("sample_id") == sample_id and t.get("template") == name]
    rounds = sorted({int(t.get("round") or 0) for t in turns})
    if not turns:
        raise UserInputError(f"prompts try: {run.dir}: sample '{sample_id}' has no {name} turn in "
                             "its trace (the loop did not take that step for it)")
    if round_ is None:
        round_ = rounds[0]
    elif round_ not in rounds:
        raise UserInputError(f"--round: sample '{sample_id}' has {name} turns in rounds "
                             f"{', '.join(map(str, rounds))}, not in round {round_}")
    snapshot = load_templates(run.dir / PROMPTS)[name]
    tried = Tried(load_templates(prompts_dir)[name], snapshot, sample_id, round_)
    versions = [v for v in run.trajectories if v["sample_id"] == sample_id]
    tried.run_version = next((v for v in versions if v["round"] == round_), None)
    scoring = name in ANSWER_FIELD or name == "contrast_critic_critique"
    memory = _memory(settings, embedder, tried.notes, run) if scoring else None
    try:
        scorer = loop_parts(settings, memory)[1] if memory is not None else None
        calls = _calls(name, spec, versions, round_, settings, run, scorer,
                       [t for t in turns if int(t.get("round") or 0) == round_])
        for call in calls:
            _check(call, snapshot)
        _send(tried, calls, settings, name, scorer, spec, versions, round_)
    finally:
        if memory is not None:
            memory.close()
    return tried


def _plan_entry(run: RunData, sample_id: str) -> PlanEntry:
    for entry in run.plan:
        if entry["sample_id"] == sample_id:
            return entry
    known = ", ".join(str(e["sample_id"]) for e in run.plan[:6])
    raise UserInputError(f"--sample: {run.dir}: no sample '{sample_id}' in its plan (e.g. {known})")


def _memory(settings: Settings, embedder: Embedder | None, notes: list[str], run: RunData) -> Any:
    memory = open_memory(settings, embedder)
    if settings.memory.path == EPHEMERAL and not settings.memory.url:
        load_starter_pack(settings, memory)
        notes.append("the run's memory was ephemeral: scored on the packaged starter pack"
                     + (" (the knowledge the run elicited is gone)"
                        if any(t.get("sample_id") == "_memory" for t in run.turns) else ""))
    return memory


def _knowledge(run: RunData, version: Version | None) -> list[str]:
    """The texts of the knowledge items the agents were shown for the sample, in order."""
    ids = [str(i) for i in version.get("grounding_ids", [])] if version is not None else []
    texts = item_texts(run.config.get("memory"), ids)
    return [texts[i][1] for i in ids if i in texts]


def _history(versions: list[Version]) -> list[dict[str, Any]]:
    keep = ("round", "step", "question", "response", "representativeness", "distinctiveness", "objective")
    return [{k: dict(v)[k] for k in keep} for v in versions[-HISTORY:]]


def _avoided(run: RunData, spec: PlanEntry, turn: TraceLine | None) -> list[str]:
    """What a draft was told not to repeat: this run's earlier questions for the culture and
    topic (other samples' drafts and refinements), most recent first. (Questions of samples
    earlier runs accepted into memory are not rebuilt: the check below says so if it matters.)"""
    culture_topic = {e["sample_id"]: (e["culture"], e["topic"]) for e in run.plan}
    mine = (spec["culture"], spec["topic"])
    asked: dict[str, str] = {}
    for earlier in run.turns:
        if earlier is turn:
            break
        parsed = earlier.get("parsed") or {}
        owner = str(earlier.get("sample_id"))
        if (earlier.get("template") in ("culture_expert_question", "refiner_question")
                and culture_topic.get(owner) == mine and parsed.get("question")):
            asked.setdefault(str(parsed["question"]).strip(), owner)
    others = [q for q, owner in reversed(asked.items()) if owner != spec["sample_id"]]
    return others[:AVOID_LIMIT]


def _calls(name: str, spec: PlanEntry, versions: list[Version], round_: int, settings: Settings,
           run: RunData, scorer: Any, turns: list[TraceLine]) -> list[Call]:
    """The request(s) of the template at that step: one, or one per contrast culture."""
    culture, contrast = spec["culture"], list(spec["contrast"])
    at = next((v for v in versions if v["round"] == round_), None)
    earlier = [v for v in versions if v["round"] < round_]
    last = next((t for t in reversed(turns) if not t.get("error")), turns[-1])
    if at is None and name != "culture_expert_question" and not earlier:
        raise UserInputError(f"--round: {run.dir}: sample '{spec['sample_id']}' has no version of "
                             f"round {round_} in trajectories.jsonl to take the inputs from")
    if name == "culture_expert_question":
        variables = {"culture": culture, "topic": spec.get("topic_name", spec["topic"]),
                     "topic_description": spec.get("topic_description", ""),
                     "knowledge": _knowledge(run, at or (versions[0] if versions else None)),
                     "avoid_questions": _avoided(run, spec, last)}
        return [Call(variables, question_rules(culture, contrast), last)]
    if name == "contrast_critic_contrast":
        assert at is not None
        return [Call({"culture": other, "question": at["question"]}, None,
                     _matching(turns, {"culture": other, "question": at["question"]}, run))
                for other in contrast]
    if name in ("culture_expert_answer", "contrast_critic_critique"):
        assert at is not None
        if name == "culture_expert_answer":
            return [Call({"culture": culture, "question": at["question"],
                          "knowledge": _knowledge(run, at)}, answer_rules(culture, at["question"]), last)]
        answers = dict(at.get("contrast_answers") or {})
        rescored = scorer.score(at["question"], at["response"], culture, contrast, answers,
                                at.get("grounding_ids", []))
        return [Call({"culture": culture, "question": at["question"], "response": at["response"],
                      "representativeness": at["representativeness"],
                      "distinctiveness": at["distinctiveness"], "objective": at["objective"],
                      "generic_sentences": rescored.generic_sentences,
                      "missing_core": at.get("missing_core", []), "contrast_answers": answers}, None, last)]
    base = base_version(earlier, settings.loop)
    if name == "refiner_question":
        return [Call({"culture": culture, "topic": spec.get("topic_name", spec["topic"]),
                      "question": base["question"], "critique": base.get("critique", ""),
                      "history": _history(earlier)}, question_rules(culture, contrast), last)]
    return [Call({"culture": culture, "question": base["question"], "response": base["response"],
                  "critique": base.get("critique", ""), "history": _history(earlier),
                  "missing_core": base.get("missing_core", []), "knowledge": _knowledge(run, base)},
                 answer_rules(culture, base["question"]), last)]


def _matching(turns: list[TraceLine], variables: dict[str, Any], run: RunData) -> TraceLine | None:
    """The trace turn whose messages the run's template renders from ``variables``."""
    sent = load_templates(run.dir / PROMPTS)["contrast_critic_contrast"].render(**variables)
    return next((t for t in turns if t.get("messages") == sent), None)


def _check(call: Call, snapshot: PromptTemplate) -> None:
    """Whether the rebuilt inputs render the run's template into what the run sent."""
    if call.run_turn is None:
        call.difference = "no turn of the run's trace matches these inputs"
        return
    mine, sent = snapshot.render(**call.variables), list(call.run_turn.get("messages") or [])
    call.exact = mine == sent
    if not call.exact:
        call.difference = _first_difference(mine, sent)


def _first_difference(mine: list[dict[str, str]], sent: list[dict[str, Any]]) -> str:
    for index, (a, b) in enumerate(zip(mine, sent, strict=False)):
        lines_a, lines_b = str(a.get("content", "")).splitlines(), str(b.get("content", "")).splitlines()
        for number, (x, y) in enumerate(zip(lines_a, lines_b, strict=False), start=1):
            if x != y:
                return f"message {index + 1}, line {number}: rebuilt {x[:80]!r}, the run sent {y[:80]!r}"
        if len(lines_a) != len(lines_b):
            return f"message {index + 1}: rebuilt {len(lines_a)} lines, the run sent {len(lines_b)}"
    return f"rebuilt {len(mine)} messages, the run sent {len(sent)}"


def _send(tried: Tried, calls: list[Call], settings: Settings, name: str, scorer: Any,
          spec: PlanEntry, versions: list[Version], round_: int) -> None:
    import asyncio

    asyncio.run(_ask_all(tried, calls, settings, name, scorer, spec, versions, round_))


async def _ask_all(tried: Tried, calls: list[Call], settings: Settings, name: str, scorer: Any,
                   spec: PlanEntry, versions: list[Version], round_: int) -> None:
    schema = SCHEMAS[name]
    async with endpoint(settings) as (base_url, model, liveness):
        tried.endpoint, tried.model = public_url(base_url), model
        for call in calls:
            # The method the run's turn used (one request, no fallback); the turn's seed.
            turn = call.run_turn
            method = str(turn.get("method") or "") if turn is not None else ""
            method = method or settings.llm.structured_output
            llm_settings = settings.llm.model_copy(update={"parse_retries": 0})
            llm = RoleLLM(SPECS[name].agent, llm_settings, RequestLimiter(1), MethodMemory(method),  # type: ignore[arg-type]
                          base_url, model, liveness)
            messages = tried.template.render(**call.variables)
            outcome = Outcome(call, messages)
            result = CallResult(model=model, seed_key=f"{tried.sample_id}#{round_}")
            started = time.monotonic()
            try:
                parsed, _ = await llm.structured(messages, schema, result)
            except ModelOutputError as exc:
                outcome.verdict = f"refused: {exc}"
            else:
                outcome.parsed = parsed.model_dump()
                try:  # the sample's own checks (names of the cultures, the question repeated)
                    schema.model_validate(outcome.parsed, context=call.rules)
                    outcome.verdict = "accepted"
                except ValidationError as exc:
                    outcome.verdict = (f"refused: {describe(exc)} (a run re-asks it; on the last "
                                       "try it takes the names out)")
            finally:
                outcome.seconds = round(time.monotonic() - started, 2)
                outcome.reply = result.output
                await llm.chat.root_async_client.close()
            if name in ANSWER_FIELD and outcome.parsed is not None:
                outcome.scores = _score(scorer, spec, versions, round_, call,
                                        str(outcome.parsed[ANSWER_FIELD[name]]))
            tried.outcomes.append(outcome)


def _score(scorer: Any, spec: PlanEntry, versions: list[Version], round_: int, call: Call,
           answer: str) -> dict[str, Any]:
    """The reply scored as the run scores the version this step makes (its contrast answers and
    the knowledge shown left out of the evidence)."""
    at = next((v for v in versions if v["round"] == round_), None)
    question = str(call.variables["question"])
    answers = dict(at.get("contrast_answers") or {}) if at is not None else {}
    ids = list((at or versions[0]).get("grounding_ids", [])) if versions else []
    score = scorer.score(question, answer, spec["culture"], list(spec["contrast"]), answers, ids)
    return {"representativeness": round(score.representativeness, 4),
            "distinctiveness": round(score.distinctiveness, 4), "objective": round(score.objective, 4),
            "flags": score.flags, "evidence": getattr(score, "evidence", []), "response": answer}
