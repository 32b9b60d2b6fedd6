"""``caredio eval --cache``: asking the same model the same questions again costs nothing.

The real CLI entry point (in process) against the FAKE stub server, with a real SQLite cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from caredio.rundir.files import read_jsonl
from testing.cli import in_process_cli
from testing.eval_fixtures import snack_files
from testing.stub_server import StubOpenAIServer


def test_a_second_eval_through_the_cache_sends_nothing(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    cli = in_process_cli(monkeypatch, capsys)
    files = [str(p) for p in snack_files(tmp_path / "blend")]
    cache = tmp_path / "cache.sqlite"
    with StubOpenAIServer(responder=lambda body: "I could not say.") as stub:
        code, _, err = cli("eval", *files, "--base-url", stub.url, "--out", str(tmp_path / "a"),
                           "--cache", str(cache), "-q")
        assert code == 0, err
        sent = len(stub.requests)
        code, _, err = cli("eval", *files, "--base-url", stub.url, "--out", str(tmp_path / "b"),
                           "--cache", str(cache), "-q")
        assert code == 0, err
        assert len(stub.requests) == sent > 0
    first, second = (read_jsonl(tmp_path / name / "answers.jsonl") for name in ("a", "b"))
    assert len(second) == sent and all(a["cached"] and a["latency_ms"] == 0 for a in second)
    assert not any(a["cached"] for a in first)
    assert sorted((a["item_id"], a["reply"]) for a in second) == sorted((a["item_id"], a["reply"]) for a in first)
