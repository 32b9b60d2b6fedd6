"""Secrets: a planted API key and URL credentials (of the LLM endpoint and of a Chroma server)
never reach the run directory, the output or the logs.

A real `caredio --debug run` subprocess (every log line on stderr) against the FAKE stub
server, with the FAKE HashEmbedder to keep it fast.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from caredio.errors import UserInputError
from caredio.run.runner import resume_run
from testing.jobs import CLI_WITH_FAKE_EMBEDDER, fake_cli_env
from testing.recording_proxy import RecordingProxy
from testing.stub_server import StubOpenAIServer

KEY = "sk-PLANTED-1f2e3d4c5b6a79880123456789abcdef"
PASSWORD = "pw-PLANTED-9z8y7x"
BASIC = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()

def test_planted_key_and_url_password_appear_nowhere(tmp_path: Path, fake_embedder: Any) -> None:
    env = fake_cli_env(OPENAI_API_KEY=KEY)
    with StubOpenAIServer() as stub:
        url = stub.url.replace("http://", f"http://alice:{PASSWORD}@")
        proc = subprocess.run(
            [sys.executable, "-c", CLI_WITH_FAKE_EMBEDDER, "--debug", "run", "--base-url", url,
             "--model", "stub", "--cultures", "Japan,China", "--topics", "food_drink",
             "--max-rounds", "1", "--memory", ":memory:", "--out", str(tmp_path / "runs"),
             "--run-id", "r"],
            env=env, capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        # httpx sends URL credentials as HTTP Basic auth (in place of the Bearer key).
        assert f"Basic {BASIC}" in stub.authorizations
    run_dir = tmp_path / "runs" / "r"
    assert (run_dir / "dataset.jsonl").exists() and len(proc.stderr) > 1000  # logs were on
    for secret in (KEY, PASSWORD, BASIC):
        assert secret not in proc.stdout and secret not in proc.stderr
        for path in run_dir.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    config = (run_dir / "config.json").read_text()
    assert "REDACTED@127.0.0.1" in config

    # Resuming needs the URL again: it was never stored.
    with pytest.raises(UserInputError, match="never stored"):
        resume_run(run_dir, lambda kind, data: None, embedder=fake_embedder)


def test_the_key_goes_in_the_header_and_nowhere_else(tmp_path: Path, fake_embedder: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from caredio.run.runner import start_run
    from caredio.rundir.files import read_jsonl
    from testing.jobs import stub_settings

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(tmp_path))
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=fake_embedder)
        assert stub.authorizations and set(stub.authorizations) == {f"Bearer {KEY}"}
    assert record["status"] == "completed" and read_jsonl(run_dir / "trace.jsonl")
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_a_memory_url_password_authenticates_and_appears_nowhere(tmp_path: Path,
                                                                 chroma_server: str) -> None:
    """`caredio --debug run` and `memory stats` with a Chroma server URL holding a password
    (a real server behind a recording forwarder): the password goes to the server as basic
    authentication, and into no output, log line or file."""
    chroma_password = "chroma-PLANTED-4k3j2h"
    chroma_basic = base64.b64encode(f"bob:{chroma_password}".encode()).decode()
    env = fake_cli_env()
    with RecordingProxy(chroma_server) as proxy, StubOpenAIServer() as stub:
        memory_url = f"http://bob:{chroma_password}@127.0.0.1:{proxy.port}"
        outputs = []
        for args in (("run", "--base-url", stub.url, "--model", "stub", "--cultures", "Japan,China",
                      "--topics", "food_drink", "--max-rounds", "1", "--memory-url", memory_url,
                      "--out", str(tmp_path / "runs"), "--run-id", "r"),
                     ("memory", "stats", "--memory-url", memory_url)):
            proc = subprocess.run([sys.executable, "-c", CLI_WITH_FAKE_EMBEDDER, "--debug", *args],
                                  env=env, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr[-3000:]
            outputs += [proc.stdout, proc.stderr]
    assert set(proxy.authorizations) == {f"Basic {chroma_basic}"}
    assert f"http://127.0.0.1:{proxy.port}" in outputs[2]  # stats names the server, redacted
    run_dir = tmp_path / "runs" / "r"
    assert (run_dir / "dataset.jsonl").exists() and len(outputs[1]) > 1000  # logs were on
    for secret in (chroma_password, chroma_basic):
        assert not [text for text in outputs if secret in text]
        for path in run_dir.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    assert f"REDACTED@127.0.0.1:{proxy.port}" in (run_dir / "config.json").read_text()
