"""The refiner: rewrites the question or the response, seeing every earlier version's scores."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from caredio.agents.base import TurnContext, run_turn
from caredio.llm import RoleLLM
from caredio.prompts import PromptTemplate


class RefinedQuestion(BaseModel):
    """A rewritten question that draws out core and distinctive aspects of the culture."""

    question: str = Field(description="The rewritten question; names no country")


class RefinedResponse(BaseModel):
    """A rewritten insider answer."""

    response: str = Field(description="The rewritten answer, 3 to 5 sentences")


class Refiner:
    role = "refiner"

    def __init__(self, llm: RoleLLM, templates: dict[str, PromptTemplate]) -> None:
        self.llm = llm
        self.question_template = templates["refiner_question"]
        self.response_template = templates["refiner_response"]

    async def refine_question(
        self, context: TurnContext, *, culture: str, topic: str, question: str, critique: str,
        history: list[dict[str, Any]],
    ) -> str:
        reply = await run_turn(
            self.llm, self.question_template, RefinedQuestion, context, culture=culture,
            topic=topic, question=question, critique=critique, history=history,
        )
        return reply.question.strip()

    async def refine_response(
        self, context: TurnContext, *, culture: str, question: str, response: str, critique: str,
        history: list[dict[str, Any]], missing_core: list[str], knowledge: list[str],
    ) -> str:
        reply = await run_turn(
            self.llm, self.response_template, RefinedResponse, context, culture=culture,
            question=question, response=response, critique=critique, history=history,
            missing_core=missing_core, knowledge=knowledge,
        )
        return reply.response.strip()
