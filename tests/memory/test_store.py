"""The cultural memory on real Chroma: ephemeral, persistent, and a real Chroma server over
HTTP on loopback — the same code. A memory built with another embedding backend is refused."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from caredio.errors import ServiceUnreachable, UserInputError
from caredio.memory.chroma import make_client
from caredio.memory.items import KnowledgeItem
from caredio.memory.store import CulturalMemory
from testing.recording_proxy import RecordingProxy

ITEMS = [
    KnowledgeItem(culture="Japan", topic="food_drink", text="Rice with miso soup and pickles.", weight=0.9),
    KnowledgeItem(culture="Japan", topic="greetings_etiquette", text="People bow when greeting.", weight=0.8),
    KnowledgeItem(culture="Mexico", topic="food_drink", text="Tortillas come with most meals.", weight=1.0),
]


def exercise(memory: CulturalMemory) -> None:
    assert memory.add_knowledge(ITEMS) == 3
    assert memory.add_knowledge(ITEMS) == 0
    assert memory.count() == 3
    assert memory.cultures() == ["Japan", "Mexico"]
    found = memory.retrieve("Japan", "what do people eat", k=1, topic="food_drink")
    assert [item.text for item in found] == ["Rice with miso soup and pickles."]
    stats = memory.stats()
    assert stats["knowledge_items"] == 3 and stats["cultures"]["Japan"]["items"] == 2
    assert stats["embedding_backend"] == memory.embedder.backend


def test_ephemeral(embedder: Any) -> None:
    exercise(CulturalMemory.open(embedder))


def test_persistent_reopens(tmp_path: Path, embedder: Any) -> None:
    exercise(CulturalMemory.open(embedder, path=tmp_path / "memory"))
    again = CulturalMemory.open(embedder, path=tmp_path / "memory")
    assert again.count() == 3 and again.add_knowledge(ITEMS) == 0


def test_precomputed_vectors(embedder: Any) -> None:
    memory = CulturalMemory.open(embedder)
    vectors = embedder.embed([item.text for item in ITEMS])
    assert memory.add_knowledge(ITEMS, vectors=vectors) == 3
    assert memory.matrices()["Mexico"].embeddings.shape == (1, embedder.dim)


def test_other_backend_is_refused(tmp_path: Path, embedder: Any) -> None:
    client = make_client(path=tmp_path / "memory")
    client.get_or_create_collection("knowledge", embedding_function=None,
                                    metadata={"embedding_backend": "openai:text-embedding-3-small",
                                              "dim": 1536, "hnsw:space": "cosine"})
    del client
    with pytest.raises(UserInputError, match="openai:text-embedding-3-small"):
        CulturalMemory.open(embedder, path=tmp_path / "memory")


def test_bad_url() -> None:
    with pytest.raises(UserInputError, match=r"memory\.url"):
        make_client(url="ftp://example.org/chroma")


def test_http_client_against_a_real_server(chroma_server: str, embedder: Any) -> None:
    memory = CulturalMemory.open(embedder, url=chroma_server)
    assert memory.label == chroma_server
    exercise(memory)
    assert CulturalMemory.open(embedder, url=chroma_server).count() == 3  # the server kept them


def test_url_credentials_authenticate_and_are_never_shown(chroma_server: str, embedder: Any) -> None:
    """user:password in the URL goes to the server as Chroma's basic authentication (seen by a
    recording forwarder in front of the real server), and the memory's label drops it."""
    with RecordingProxy(chroma_server) as proxy:
        url = f"http://alice:pw%20secret@127.0.0.1:{proxy.port}"
        memory = CulturalMemory.open(embedder, url=url)
        exercise(memory)
    basic = "Basic " + base64.b64encode(b"alice:pw secret").decode()
    assert proxy.authorizations and set(proxy.authorizations) == {basic}
    assert memory.label == f"http://127.0.0.1:{proxy.port}"
    assert "secret" not in str(memory.stats())


@pytest.mark.parametrize(("url", "reason"), [
    ("http://alice@127.0.0.1:9", "both a user and a password"),
    ("http://:tok-secret@127.0.0.1:9", "both a user and a password"),
    ("http://127.0.0.1:9/?token=tok-secret", "query string"),
    ("ftp://alice:tok-secret@example.org/chroma", "not an http(s) URL"),
])
def test_urls_whose_credentials_cannot_be_used_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UserInputError, match=re.escape(reason)) as caught:
        make_client(url=url)
    assert "tok-secret" not in str(caught.value) and str(caught.value).startswith("memory.url")


def test_an_unreachable_server_is_named_without_its_credentials() -> None:
    # ServiceUnreachable is a user error: the CLI exits 2 at start-up (tests/test_shared_state.py).
    with pytest.raises(ServiceUnreachable, match=r"cannot reach the Chroma server http://127.0.0.1:9 ") as caught:
        make_client(url="http://alice:tok-secret@127.0.0.1:9")
    assert "tok-secret" not in str(caught.value)


class _CountingQueries:
    """Wraps the real Chroma collection and counts its queries (our cache's use of it)."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.queries = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collection, name)

    def query(self, **kwargs: Any) -> Any:
        self.queries += 1
        return self.collection.query(**kwargs)


def test_retrieve_asks_chroma_once_per_query_until_knowledge_is_added(embedder: Any) -> None:
    import threading

    memory = CulturalMemory.open(embedder)
    memory.add_knowledge(ITEMS)
    counting = _CountingQueries(memory.knowledge)
    memory.knowledge = counting
    first = memory.retrieve("Japan", "what do people eat", k=1, topic="food_drink")
    assert [item.text for item in first] == ["Rice with miso soup and pickles."]
    # samples of one topic ask the same query at once: one of them asks Chroma
    answers: list[list[str]] = []
    threads = [threading.Thread(target=lambda: answers.append(
        [item.text for item in memory.retrieve("Japan", "what do people eat", 2)])) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counting.queries == 2 and len(answers) == 8 and all(a == answers[0] for a in answers)
    assert memory.retrieve("Japan", "what do people eat", k=1, topic="food_drink") == first
    assert counting.queries == 2
    # new knowledge: the next answer is Chroma's again, and has it
    memory.add_knowledge([KnowledgeItem(culture="Japan", topic="food_drink",
                                        text="What people eat most is rice with miso soup and fish.")])
    again = memory.retrieve("Japan", "what do people eat", k=1, topic="food_drink")
    assert counting.queries == 3
    assert [item.text for item in again] == ["What people eat most is rice with miso soup and fish."]


def test_an_answer_computed_while_knowledge_changed_is_not_kept() -> None:
    """The cache's own logic (no Chroma): knowledge added during a query makes its answer stale."""
    from caredio.memory.query_cache import QueryCache

    cache: QueryCache[str] = QueryCache(limit=2)
    computed: list[str] = []

    def stale() -> list[str]:
        computed.append("stale")
        cache.invalidate()  # knowledge came in while this query ran
        return ["old"]

    assert cache.get("q", stale) == ["old"]  # the caller still gets what was computed
    assert cache.get("q", lambda: computed.append("fresh") or ["new"]) == ["new"]
    assert cache.get("q", lambda: ["never asked"]) == ["new"]
    assert computed == ["stale", "fresh"]
    for key in ("a", "b"):  # past the limit, the least recently used goes
        cache.get(key, lambda key=key: [key])
    assert cache.get("q", lambda: ["asked again"]) == ["asked again"]


def test_a_failed_query_is_asked_again_and_leaves_nothing_behind() -> None:
    """The cache's own logic: an error reaches the caller, and nothing of it is kept."""
    from caredio.memory.query_cache import QueryCache

    cache: QueryCache[str] = QueryCache()

    def down() -> list[str]:
        raise ConnectionError("Chroma went away")

    with pytest.raises(ConnectionError):
        cache.get("q", down)
    assert cache._asking == {}  # no lock of the failed query left behind
    assert cache.get("q", lambda: ["answer"]) == ["answer"]
