"""Gaming cases: ways to raise J without a better sample, each beside the honest answer.

Shared by ``scorer_validation.py`` (the gaming table) and ``tests/test_gaming.py``. A case is
a question, the knowledge items the loop showed the agents, an honest insider answer in plain
words (for the starter pack: a paraphrase of the shown items, so that copying them is compared
with saying the same thing), and the variants the refiner could learn:

* ``padded``   — the honest answer plus three off-topic statements typical of the culture;
* ``repeated`` — the honest answer said three times;
* ``copied``   — the knowledge items the loop showed the agents, pasted verbatim;
* ``named``    — the honest answer with the country and its people named;
* ``blank``    — nothing;
* ``other_language`` — the honest answer in the culture's own language;
* ``generic``  — a vague answer to the question that would be true of any culture (starter pack
  only);
* ``invented`` — made-up specifics no culture's knowledge holds (BLEnD: three invented words in
  place of the annotators' answers; starter pack: an invented custom). Far from every related
  culture's knowledge, so a D that only asked "does a rival say this?" would pay for them.

The starter-pack cases were written for this project (the translations too); the BLEnD cases
are built from held-out questions (the honest answer states the annotators' answers, the
padding is the same country's majority answers to questions of other topics, the other language is the
annotators' own-language answers).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

VARIANTS = ("honest", "padded", "repeated", "copied", "named", "blank", "other_language", "generic", "invented")
SYLLABLES = ("ka", "lo", "mi", "tre", "vash", "zu", "bor", "nel", "qui", "dra", "fen", "os")
MARGIN = 0.02  # a variant "wins" when its J exceeds the honest J by more than this


@dataclass
class Case:
    culture: str
    contrast: list[str]
    question: str
    honest: str
    padding: list[str]
    own_language: str
    topic: str = ""
    shown_ids: list[str] = field(default_factory=list)  # the items the agents were shown
    shown: list[tuple[str, str]] = field(default_factory=list)  # (item id, text), filled from memory
    name_phrases: tuple[str, str] = ("", "")  # ("In Japan, ", "Japanese people")
    # A vague answer that would be true of any culture; none for BLEnD's cases
    generic: str = ""
    invented: str = ""  # made-up specifics no knowledge holds

    def variants(self) -> dict[str, str]:
        lead, people = self.name_phrases
        named = f"{lead}{self.honest[0].lower()}{self.honest[1:]} {people} are proud of it."
        return {
            "honest": self.honest,
            "padded": f"{self.honest} {' '.join(self.padding)}",
            "repeated": " ".join([self.honest] * 3),
            "copied": " ".join(text for _, text in self.shown),
            "named": named,
            "blank": "   ",
            "other_language": self.own_language,
            "generic": self.generic,
            "invented": self.invented,
        }


STARTER_CASES = [
    Case(
        culture="Japan", contrast=["South Korea", "China"], topic="greetings_etiquette",
        question="How do people usually greet someone they are meeting for the first time?",
        shown_ids=["starter-japan-greetings_etiquette-1", "starter-japan-greetings_etiquette-2",
                   "starter-japan-greetings_etiquette-4"],
        honest=("They bow, and a deeper, longer bow shows more respect to someone senior. At work "
                "people swap business cards with both hands and take a moment to read them. "
                "Hugs or kisses on the cheek are rare: people keep their distance."),
        padding=["Breakfast is often rice and miso soup with grilled fish.",
                 "Trains run exactly on time, to the minute.",
                 "Shoes come off at the door when you enter a home."],
        own_language=("お辞儀をします。目上の人には深く長くお辞儀をして敬意を示します。仕事では名刺を両手で"
                      "交換して少し目を通します。ハグや頬へのキスはめったにせず、距離を保ちます。"),
        name_phrases=("In Japan, ", "Japanese people"),
        generic="People greet each other politely and say hello when they meet someone new.",
        invented="They greet with the zelorin tap, touching elbows twice and saying vashkomi.",
    ),
    Case(
        culture="South Korea", contrast=["Japan", "China"], topic="food_drink",
        question="What is on the table at an ordinary home meal?",
        shown_ids=["starter-south_korea-food_drink-1", "starter-south_korea-food_drink-3",
                   "starter-south_korea-food_drink-5"],
        honest=("Rice and a soup, with lots of small side dishes that everyone shares. There is "
                "almost always kimchi, and the seasoning leans on red pepper paste and soybean paste."),
        padding=["People ask your age early on to know how to speak to you.",
                 "Students study late into the night for the university entrance exam.",
                 "A slight bow goes with the everyday greeting."],
        own_language=("밥과 국, 그리고 모두가 함께 먹는 여러 가지 반찬이 올라갑니다. 김치는 거의 항상 있고, "
                      "고추장과 된장으로 간을 합니다."),
        name_phrases=("In South Korea, ", "Korean people"),
        generic="There is usually a main dish with a few sides and something to drink.",
        invented="There is always trelline stew with dramuki leaves and a bowl of qosh.",
    ),
    Case(
        culture="Germany", contrast=["United States", "Japan"], topic="time_punctuality",
        question="What happens if you are a few minutes late to an appointment?",
        shown_ids=["starter-germany-time_punctuality-1", "starter-germany-time_punctuality-2",
                   "starter-germany-time_punctuality-5"],
        honest=("Being even a few minutes late without letting anyone know comes across as rude, "
                "because being on time really matters. Plans and deadlines are firm commitments, "
                "and even meetings with friends are set well ahead."),
        padding=["Bread with cold cuts and cheese is a usual evening meal.",
                 "People greet with a firm handshake and look you in the eye.",
                 "The formal form of address is kept until the older person offers the informal one."],
        own_language=("Schon ein paar Minuten zu spät zu kommen, ohne Bescheid zu sagen, gilt als "
                      "unhöflich, denn Pünktlichkeit ist wichtig. Absprachen und Fristen sind "
                      "verbindlich, und selbst Treffen mit Freunden werden lange im Voraus geplant."),
        name_phrases=("In Germany, ", "German people"),
        generic="It depends on the situation, but a short apology is usually enough.",
        invented="You owe the host a borlik, a small folded note, for every minute of delay.",
    ),
    Case(
        culture="United States", contrast=["Germany", "Japan"], topic="gift_giving",
        question="What do people do when they receive a present?",
        shown_ids=["starter-united_states-gift_giving-1", "starter-united_states-gift_giving-3",
                   "starter-united_states-gift_giving-5"],
        honest=("They usually open it right away in front of the person who gave it and thank them "
                "warmly. Gift cards for shops and restaurants are welcome presents too. Many people "
                "also send a handwritten thank-you card afterwards."),
        padding=["Tipping servers around twenty percent is expected in restaurants.",
                 "Thanksgiving dinner centres on roast turkey with family.",
                 "People start conversations with strangers easily and use first names."],
        own_language=("Suelen abrirlo enseguida delante de quien lo regala y dan las gracias con "
                      "entusiasmo. Las tarjetas de regalo de tiendas y restaurantes también son bien "
                      "recibidas. Muchos envían después una tarjeta de agradecimiento escrita a mano."),
        name_phrases=("In the United States, ", "Americans"),
        generic="They thank the person who gave it and say that they like it.",
        invented="They tap the gift three times and say fennimo before setting it on a zulla mat.",
    ),
]


def blend_cases(data: dict[str, Any], held_ids: list[str], per_country: int, seed: int) -> list[Case]:
    """Cases from held-out BLEnD questions (``data``: culture -> qid -> BlendQuestion)."""
    from caredio.memory.blend import DEMONYMS

    rng = random.Random(seed)
    cultures = sorted(data)
    cases = []
    for culture in cultures:
        usable = [qid for qid in held_ids if len(data[culture][qid].answers) >= 2]
        for qid in rng.sample(usable, min(per_country, len(usable))):
            q = data[culture][qid]
            others = [o for o in held_ids if data[culture][o].topic != q.topic and data[culture][o].answers]
            padding = []
            for other in rng.sample(others, min(3, len(others))):
                padding.append(data[culture][other].answers[0].text.capitalize() + ".")
            contrast = rng.sample([c for c in cultures if c != culture], 2)
            demonym = (DEMONYMS.get(culture) or (culture,))[0]
            # its own generator: drawing from ``rng`` would change every later case's sample
            words = random.Random(f"{seed}/{culture}/{qid}")
            invented = ", ".join("".join(words.sample(SYLLABLES, 3)) for _ in range(3)).capitalize() + "."
            cases.append(Case(
                culture=culture, contrast=contrast, question=q.question, topic=q.topic, invented=invented,
                honest=", ".join(a.text for a in q.answers[:3]).capitalize() + ".",
                padding=padding, own_language=", ".join(q.local_answers[:3]) + "." if q.local_answers else "",
                name_phrases=(f"In {culture}, ", f"{demonym} people"),
            ))
    return cases


def fill_shown(memory: Any, case: Case, key: str) -> None:
    """The items the loop would show the agents for this case: the listed ids, or the loop's
    own grounding rule (memory.grounding) for the case's topic."""
    matrix = memory.matrices()[case.culture]
    if case.shown_ids:
        case.shown = [(item_id, matrix.texts[matrix.ids.index(item_id)]) for item_id in case.shown_ids]
        return
    items = memory.grounding(case.culture, case.question, 6, case.topic or None, key=key)
    case.shown = [(item.id, item.text) for item in items]


def gaming_table(scorer: Any, cases: list[Case], cross_fit: bool = True) -> dict[str, dict[str, float]]:
    """Per variant: mean J, mean and largest gain over the honest answer, and the share of
    cases where the variant beats the honest answer by more than ``MARGIN``."""
    objective: dict[str, list[float]] = {name: [] for name in VARIANTS}
    gains: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for case in cases:
        exclude = [item_id for item_id, _ in case.shown] if cross_fit else None
        texts = case.variants()
        scores = {}
        for name in VARIANTS:
            if name in ("other_language", "generic", "invented") and not texts[name].strip(" ."):
                continue  # no own-language form of these answers in the data, no variant written
            scores[name] = scorer.score(case.question, texts[name], case.culture, case.contrast,
                                        exclude_ids=exclude).objective
        for name, value in scores.items():
            objective[name].append(value)
            gains[name].append(value - scores["honest"])
    table = {}
    for name in VARIANTS:
        if not objective[name]:
            continue
        gain = np.asarray(gains[name])
        table[name] = {"cases": len(gain), "mean_J": round(float(np.mean(objective[name])), 4),
                       "mean_gain": round(float(gain.mean()), 4), "max_gain": round(float(gain.max()), 4),
                       "wins": round(float((gain > MARGIN).mean()), 4)}
    return table


def format_table(title: str, table: dict[str, dict[str, float]]) -> str:
    lines = [title, f"{'variant':<16}{'cases':>6}{'mean J':>8}{'mean gain':>11}{'max gain':>10}{'wins':>7}"]
    for name, row in table.items():
        lines.append(f"{name:<16}{row['cases']:>6}{row['mean_J']:>8.3f}{row['mean_gain']:>+11.3f}"
                     f"{row['max_gain']:>+10.3f}{row['wins']:>7.2f}")
    return "\n".join(lines)
