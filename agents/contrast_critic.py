"""The contrast critic: answers as related cultures, then critiques the target answer.

The scores and the sentence-level diagnosis come from memory (deterministic); the model
writes the contrast answers and the suggestions. The critique handed to the refiner joins
both, so a small model's weak critique is still anchored in measured evidence.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from caredio.agents.base import TurnContext, run_turn
from caredio.agents.checks import Items, Text
from caredio.llm.client import RoleLLM
from caredio.prompts import PromptTemplate


class ContrastAnswer(BaseModel):
    """A short answer to the same question by an insider of a related culture."""

    answer: Text = Field(description="Two sentences on what is typical in the related culture")


class Critique(BaseModel):
    """What keeps the answer from being representative and distinctive, and how to fix it."""

    summary: Text = Field(description="One or two sentences: the main weakness of the answer")
    suggestions: Items = Field(
        default_factory=list, description="Up to three concrete changes to make"
    )


class ContrastCritic:
    role = "contrast_critic"

    def __init__(self, llm: RoleLLM, templates: dict[str, PromptTemplate]) -> None:
        self.llm = llm
        self.contrast_template = templates["contrast_critic_contrast"]
        self.critique_template = templates["contrast_critic_critique"]

    async def contrast_answer(self, context: TurnContext, culture: str, question: str) -> str:
        reply = await run_turn(
            self.llm, self.contrast_template, ContrastAnswer, context, culture=culture,
            question=question,
        )
        return reply.answer

    async def critique(
        self, context: TurnContext, *, culture: str, question: str, response: str,
        representativeness: float, distinctiveness: float, objective: float,
        generic_sentences: list[str], missing_core: list[str], contrast_answers: dict[str, str],
    ) -> Critique:
        return await run_turn(
            self.llm, self.critique_template, Critique, context, culture=culture,
            question=question, response=response, representativeness=representativeness,
            distinctiveness=distinctiveness, objective=objective,
            generic_sentences=generic_sentences, missing_core=missing_core,
            contrast_answers=contrast_answers,
        )


def critique_text(critique: Critique, generic_sentences: list[str], missing_core: list[str]) -> str:
    """The critique as the refiner reads it: the model's words plus the measured diagnosis."""
    parts = [critique.summary]
    if generic_sentences:
        parts.append("Generic or shared: " + " | ".join(generic_sentences[:3]))
    if missing_core:
        parts.append("Missing core: " + " | ".join(missing_core[:3]))
    if critique.suggestions:
        parts.append("Suggestions: " + " | ".join(critique.suggestions[:3]))
    return "\n".join(part for part in parts if part)
