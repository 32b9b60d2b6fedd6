"""The cultural topic taxonomy: built-in (38 topics) plus user additions."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from caredio.errors import UserInputError


@dataclass(frozen=True)
class Topic:
    id: str
    name: str
    description: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def builtin_topics() -> list[Topic]:
    raw = resources.files("caredio").joinpath("data/topics.json").read_text(encoding="utf-8")
    return [Topic(**item) for item in json.loads(raw)]


def load_topics(extra_file: str | Path | None = None) -> list[Topic]:
    """Built-in topics, plus a user's JSON list of ``{id, name, description}`` if given."""
    topics = builtin_topics()
    if extra_file is None:
        return topics
    path = Path(extra_file)
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{path}: cannot read topics: {exc}") from None
    known = {topic.id for topic in topics}
    for index, item in enumerate(items):
        try:
            topic = Topic(id=item["id"], name=item["name"], description=item["description"])
        except (KeyError, TypeError):
            raise UserInputError(
                f"{path}: item {index}: needs 'id', 'name' and 'description'"
            ) from None
        if topic.id not in known:
            topics.append(topic)
            known.add(topic.id)
    return topics


def resolve_topics(ids: list[str], topics: list[Topic]) -> list[Topic]:
    by_id = {topic.id: topic for topic in topics}
    unknown = [topic_id for topic_id in ids if topic_id not in by_id]
    if unknown:
        raise UserInputError(
            f"--topics: unknown topic '{unknown[0]}' (see `caredio topics` for the ids)"
        )
    return [by_id[topic_id] for topic_id in ids]
