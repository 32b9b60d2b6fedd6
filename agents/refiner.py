"""The refiner: rewrites the question or the response, seeing every earlier version's scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from caredio.agents.base import TurnContext, run_turn
from caredio.agents.checks import Answer, Question, answer_rules, question_rules
from caredio.llm.client import RoleLLM
from caredio.prompts import PromptTemplate


class RefinedQuestion(BaseModel):
    """A rewritten question that draws out core and distinctive aspects of the culture."""

    question: Question = Field(description="The rewritten question, ending with '?'; names no country")


class RefinedResponse(BaseModel):
    """A rewritten insider answer."""

    response: Answer = Field(description="The rewritten answer, 3 to 5 sentences, naming no country")


class Refiner:
    role = "refiner"

    def __init__(self, llm: RoleLLM, templates: dict[str, PromptTemplate]) -> None:
        self.llm = llm
        self.question_template = templates["refiner_question"]
        self.response_template = templates["refiner_response"]

    async def refine_question(
        self, context: TurnContext, *, culture: str, topic: str, question: str, critique: str,
        history: list[dict[str, Any]], contrast: Sequence[str] = (),
    ) -> str:
        """The rewritten question; it names neither ``culture`` nor the ``contrast`` cultures."""
        reply = await run_turn(
            self.llm, self.question_template, RefinedQuestion, context,
            question_rules(culture, contrast), culture=culture,
            topic=topic, question=question, critique=critique, history=history,
        )
        return reply.question

    async def refine_response(
        self, context: TurnContext, *, culture: str, question: str, response: str, critique: str,
        history: list[dict[str, Any]], missing_core: list[str], knowledge: list[str],
    ) -> str:
        reply = await run_turn(
            self.llm, self.response_template, RefinedResponse, context,
            answer_rules(culture, question), culture=culture,
            question=question, response=response, critique=critique, history=history,
            missing_core=missing_core, knowledge=knowledge,
        )
        return reply.response
