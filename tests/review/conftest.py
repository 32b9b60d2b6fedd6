"""A small real run for the review tests: the real graph on the FAKE stub server with the FAKE
hash embedder (testing/review.py), made once per session and copied for each test."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def stub_run_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from testing.review import make_run

    return make_run(tmp_path_factory.mktemp("review-runs"))


@pytest.fixture
def stub_run(stub_run_template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(stub_run_template, target)
    return target


@pytest.fixture
def shared_fake_embedder(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The FAKE HashEmbedder where the run's settings look for their embedder (re-scoring an
    edit, memory ingest), so no test here loads the real model."""
    from caredio.memory import embeddings
    from testing.jobs import HashEmbedder

    fake = HashEmbedder()
    monkeypatch.setitem(embeddings._shared, embeddings.shared_key("minilm"), fake)
    return fake
