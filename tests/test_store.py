"""The cultural memory on real Chroma: ephemeral, persistent, and a real Chroma server over
HTTP on loopback — the same code. A memory built with another embedding backend is refused."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from caredio.errors import UserInputError
from caredio.memory.store import CulturalMemory, KnowledgeItem, make_client

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path: Path) -> Any:
    """A real Chroma server (the `chroma` CLI of the installed package) on loopback."""
    binary = shutil.which("chroma")
    if binary is None:
        pytest.skip("the chromadb package's `chroma` command is not installed")
    port = _free_port()
    proc = subprocess.Popen([binary, "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={"ANONYMIZED_TELEMETRY": "False", "PATH": "/usr/bin:/bin"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the Chroma server did not come up")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_http_client_against_a_real_server(chroma_server: str, embedder: Any) -> None:
    memory = CulturalMemory.open(embedder, url=chroma_server)
    assert memory.label == chroma_server
    exercise(memory)
    assert CulturalMemory.open(embedder, url=chroma_server).count() == 3  # the server kept them
