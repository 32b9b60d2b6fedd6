"""Shared fixtures.

* ``no_remote_network`` (autouse): any connection to a non-loopback address fails the test, so
  no test can reach a hosted model (or any download) by accident.
* ``embedder``: the real offline MiniLM embedder, loaded once per session.
* ``fake_embedder``: the FAKE hash embedder, for tests about orchestration only.
* ``chroma_server``: a real Chroma server (the installed ``chroma`` command) on loopback;
  ``killable_chroma_server``: the same, for a test that kills it and starts it again.
* ``postgres_url``: a real Postgres server (testing/services.py) on loopback.
* ``demo_run``: a small real run directory made by the real graph on the real embedded
  llama.cpp server, then resumed (nothing left to do), once per session; the tool tests read it.
* Tests on the real embedded server (marked ``e2e`` or ``embedded``, or using ``demo_run``)
  are skipped, with the one-line diagnosis, when the installed llama.cpp build crashes on this
  CPU: tests/llm/test_embedded_build.py's guard then fails alone and says why, instead of every
  such test erroring on the same crash.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
for _secret in ("OPENAI_API_KEY", "CAREDIO_API_KEY"):
    os.environ.pop(_secret, None)



def _is_loopback(address: Any) -> bool:
    if isinstance(address, (str, bytes)):
        return True  # unix domain socket
    if not isinstance(address, tuple):
        return False
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True, scope="session")
def no_remote_network() -> Any:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise AssertionError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise AssertionError(f"test tried to reach the network: {address!r}")
        return real_connect_ex(self, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded_connect)
        patch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
        yield


GUARD = "test_the_embedded_llama_cpp_build_completes_on_this_cpu"
_build_crash: list[str | None] = []  # probed once per session: the crash line, or None


def _embedded_build_crash() -> str | None:
    """The installed build's crash line, from one real start (self-test included), or None."""
    if not _build_crash:
        from caredio.errors import EmbeddedServerCrashed
        from caredio.llm.embedded import LocalLLMServer

        try:
            with LocalLLMServer(threads=1):
                _build_crash.append(None)
        except EmbeddedServerCrashed as exc:
            _build_crash.append(str(exc))
    return _build_crash[0]


SERVICE_FIXTURES = {"chroma_server", "killable_chroma_server", "postgres_url"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers that follow from what a test uses, so the lanes cannot drift from the tests: a
    test on the real embedded model (``e2e``, ``demo_run``) is ``embedded``; one that starts a
    service through a fixture is ``services``; both are ``slow``, so ``-m "not slow"`` is the
    fast lane."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("e2e") or "demo_run" in fixtures:
            item.add_marker(pytest.mark.embedded)
        if fixtures & SERVICE_FIXTURES:
            item.add_marker(pytest.mark.services)
        if item.get_closest_marker("embedded") or item.get_closest_marker("services"):
            item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("embedded") and item.name != GUARD and (crash := _embedded_build_crash()):
        pytest.skip(f"the embedded llama.cpp build crashes on this CPU ({GUARD} fails): {crash}")


@pytest.fixture(scope="session")
def embedder() -> Any:
    from caredio.memory.embeddings import default_embedder

    return default_embedder()


@pytest.fixture
def fake_embedder() -> Any:
    """The FAKE HashEmbedder (testing/jobs.py), for tests about orchestration: the real
    MiniLM would re-embed the 402-item starter pack into every new ephemeral memory (~12 s
    each on 2 cores). A test that takes this fixture says, by its name, that it uses a fake."""
    from testing.jobs import HashEmbedder

    return HashEmbedder()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> dict[str, Any]:
    """A real run: 2 cultures x 1 topic x 1 sample, 2 rounds, on the embedded server."""
    from caredio.config.loading import load_settings
    from caredio.run.runner import resume_run, start_run

    root = tmp_path_factory.mktemp("demo")
    events: list[tuple[str, dict[str, Any]]] = []
    settings = load_settings(
        cultures=["Japan", "South Korea"],
        topics=["greetings_etiquette"],
        samples_per_topic=1,
        contrast=["Japan", "South Korea", "China"],
        out=str(root / "runs"),
        run_id="demo",
        concurrency=2,
        loop={"max_rounds": 2, "min_rounds": 1, "r_threshold": 1.0, "d_threshold": 1.0},
        llm={"temperature": 0.2, "max_tokens": 200, "timeout": 300, "down_after": 600},
        memory={"path": str(root / "memory")},
    )
    run_dir, first = start_run(settings, lambda kind, data: events.append((kind, data)),
                               embedder=embedder)
    # Then `caredio resume` of the finished run, as a user may do: nothing is left to call,
    # and run.json must still count what the run spent (tests/test_e2e.py checks the trace).
    # A sample the 135M model never drafts usably fails alone; the resume then retries it.
    resume_events: list[tuple[str, dict[str, Any]]] = []
    record = resume_run(run_dir, lambda kind, data: resume_events.append((kind, data)), embedder=embedder)
    return {"run_dir": run_dir, "record": record, "first_record": first, "events": events,
            "resume_events": resume_events,
            "memory": root / "memory", "settings": settings}


@pytest.fixture
def chroma_server(tmp_path: Path) -> Any:
    """A real Chroma server (the `chroma` CLI of the installed package) on loopback."""
    from testing.services import ChromaServer

    server = ChromaServer(tmp_path / "server").start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Any:
    """A real Postgres server (Debian's package, initdb + pg_ctl in a temp dir) on loopback."""
    from testing.services import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture
def killable_chroma_server(tmp_path: Path) -> Any:
    """The real Chroma server of ``chroma_server`` as a ChromaServer (testing/services.py)
    the test may kill mid-run and start again on the same port and data."""
    from testing.services import ChromaServer

    server = ChromaServer(tmp_path / "server").start()
    try:
        yield server
    finally:
        server.stop()
