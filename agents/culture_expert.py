"""The culture expert: writes a culture-sensitive question and answers it as an insider."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from caredio.agents.base import TurnContext, run_turn
from caredio.agents.checks import Answer, Question, SomeItems, answer_rules, question_rules
from caredio.llm.client import RoleLLM
from caredio.prompts import PromptTemplate


class ExpertQuestion(BaseModel):
    """A question whose answer differs across related cultures."""

    question: Question = Field(
        description="One culture-sensitive question, ending with '?', that names no country or people"
    )


class ExpertAnswer(BaseModel):
    """An insider's answer to the question."""

    answer: Answer = Field(description="The insider's answer, 3 to 5 sentences, naming no country")


class ElicitedKnowledge(BaseModel):
    """Widely agreed facts of a culture on one topic."""

    facts: SomeItems = Field(description="Short factual statements, one practice or norm each")


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
        contrast: Sequence[str] = (),
    ) -> str:
        """A question for ``culture`` that names neither it nor the ``contrast`` cultures."""
        reply = await run_turn(
            self.llm, self.question_template, ExpertQuestion, context,
            question_rules(culture, contrast), culture=culture,
            topic=topic, topic_description=topic_description, knowledge=knowledge,
            avoid_questions=avoid_questions or [],
        )
        return reply.question

    async def answer(self, context: TurnContext, culture: str, question: str, knowledge: list[str]) -> str:
        reply = await run_turn(
            self.llm, self.answer_template, ExpertAnswer, context,
            answer_rules(culture, question), culture=culture, question=question, knowledge=knowledge,
        )
        return reply.answer

    async def elicit_knowledge(
        self, context: TurnContext, culture: str, topic: str, topic_description: str
    ) -> list[str]:
        reply = await run_turn(
            self.llm, self.knowledge_template, ElicitedKnowledge, context, culture=culture,
            topic=topic, topic_description=topic_description,
        )
        return reply.facts
