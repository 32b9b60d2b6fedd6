"""The culture expert: writes a culture-sensitive question and answers it as an insider."""

from __future__ import annotations

from pydantic import BaseModel, Field

from caredio.agents.base import TurnContext, run_turn
from caredio.llm import RoleLLM
from caredio.prompts import PromptTemplate


class ExpertQuestion(BaseModel):
    """A question whose answer differs across related cultures."""

    question: str = Field(description="One culture-sensitive question that does not name a country")


class ExpertAnswer(BaseModel):
    """An insider's answer to the question."""

    answer: str = Field(description="The insider's answer, 3 to 5 sentences")


class ElicitedKnowledge(BaseModel):
    """Widely agreed facts of a culture on one topic."""

    facts: list[str] = Field(description="Short factual statements, one practice or norm each")


class CultureExpert:
    role = "culture_expert"

    def __init__(self, llm: RoleLLM, templates: dict[str, PromptTemplate]) -> None:
        self.llm = llm
        self.question_template = templates["culture_expert_question"]
        self.answer_template = templates["culture_expert_answer"]
        self.knowledge_template = templates["culture_expert_knowledge"]

    async def write_question(
        self, context: TurnContext, culture: str, topic: str, topic_description: str,
        knowledge: list[str], avoid_questions: list[str] | None = None,
    ) -> str:
        reply = await run_turn(
            self.llm, self.question_template, ExpertQuestion, context, culture=culture,
            topic=topic, topic_description=topic_description, knowledge=knowledge,
            avoid_questions=avoid_questions or [],
        )
        return reply.question.strip()

    async def answer(self, context: TurnContext, culture: str, question: str, knowledge: list[str]) -> str:
        reply = await run_turn(
            self.llm, self.answer_template, ExpertAnswer, context, culture=culture,
            question=question, knowledge=knowledge,
        )
        return reply.answer.strip()

    async def elicit_knowledge(
        self, context: TurnContext, culture: str, topic: str, topic_description: str
    ) -> list[str]:
        reply = await run_turn(
            self.llm, self.knowledge_template, ElicitedKnowledge, context, culture=culture,
            topic=topic, topic_description=topic_description,
        )
        return [fact.strip() for fact in reply.facts if fact.strip()]
