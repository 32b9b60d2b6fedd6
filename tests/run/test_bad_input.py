"""Bad input through the real CLI entry point (in process): exit code 2, one line naming the
file / line / field, no traceback unless --debug, and nothing half-written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testing.cli import in_process_cli
from testing.jobs import HashEmbedder
from testing.stub_server import StubOpenAIServer


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `caredio ARGS` through caredio.cli.main.app; returns (exit code, stdout, stderr).

    The process-wide default embedder is the FAKE HashEmbedder meanwhile: these tests are
    about input handling, and it loads and embeds the starter pack in no time.
    """
    import caredio.memory.embeddings as embeddings
    monkeypatch.setitem(embeddings._shared, embeddings.shared_key("minilm"), HashEmbedder())

    return in_process_cli(monkeypatch, capsys)


@pytest.fixture(scope="module")
def stub() -> Any:
    with StubOpenAIServer() as server:
        yield server


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _run_args(stub: Any, out: Path, *extra: str) -> list[str]:
    return ["run", "--base-url", stub.url, "--model", "stub", "--memory", ":memory:",
            "--out", str(out), "--cultures", "Japan,China", "--topics", "food_drink",
            "--run-id", "r", "--quiet", *extra]


def _nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


@pytest.mark.parametrize(("toml", "needles"), [
    ("[llm]\ntmperature = 0.3\n", ("llm.tmperature", "unknown key")),
    ("concurrency = 0\n", ("concurrency",)),
    ("[loop]\nmax_rounds = -1\n", ("loop.max_rounds",)),
    ("[llm\nmodel = 'x'\n", ("invalid TOML",)),
    ("cultures = 'Japan'\nsurprise = 1\n", ("surprise", "unknown key")),
])
def test_bad_config_file(cli: Any, stub: Any, tmp_path: Path, toml: str,
                         needles: tuple[str, ...]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    code, _, err = cli(*_run_args(stub, tmp_path / "runs", "--config", str(config)))
    _one_line_error(code, err, str(config), *needles)
    _nothing_written(tmp_path / "runs")


def test_non_utf8_config_file(cli: Any, stub: Any, tmp_path: Path) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes("model = 'caf\xe9'\n".encode("latin-1"))
    code, _, err = cli(*_run_args(stub, tmp_path / "runs", "--config", str(config)))
    _one_line_error(code, err, str(config))
    _nothing_written(tmp_path / "runs")


@pytest.mark.parametrize(("flags", "needles"), [
    (("--max-rounds", "-1"), ("max_rounds",)),
    (("--concurrency", "0"), ("concurrency",)),
    (("--topics", "food_drink,underwater_basket_weaving"), ("underwater_basket_weaving",)),
])
def test_bad_flags(cli: Any, stub: Any, tmp_path: Path, flags: tuple[str, ...],
                   needles: tuple[str, ...]) -> None:
    code, _, err = cli(*_run_args(stub, tmp_path / "runs", *flags))
    _one_line_error(code, err, *needles)
    _nothing_written(tmp_path / "runs")


@pytest.mark.parametrize(("flags", "toml", "needles"), [
    (("--base-url", "notaurl"), "", ("--base-url", "llm.base_url", "'notaurl' is not a URL")),
    (("--base-url", "localhost:8000/v1"), "", ("--base-url", "is not a URL")),
    (("--base-url", "ftp://example.org/v1"), "", ("--base-url", "scheme must be http or https")),
    (("--base-url", "http:///v1"), "", ("--base-url", "no host")),
    (("--base-url", "http://example.org:port/v1"), "", ("--base-url", "bad port")),
    (("--memory-url", "chroma:8000"), "", ("--memory-url", "memory.url", "is not a URL")),
    (("--otlp-endpoint", "localhost:4317"), "", ("--otlp-endpoint", "telemetry.otlp_endpoint")),
    ((), '[llm.roles.refiner]\nbase_url = "refiner-host:8000"\n',
     ("bad.toml", "llm.roles.refiner.base_url", "is not a URL")),
    ((), '[llm]\nhealth_url = "/health"\n', ("bad.toml", "llm.health_url", "is not a URL")),
    ((), '[memory]\nurl = "ws://chroma:8000"\n', ("bad.toml", "memory.url", "not 'ws'")),
])
def test_an_endpoint_that_is_not_an_http_url_is_bad_input(
        cli: Any, stub: Any, tmp_path: Path, flags: tuple[str, ...], toml: str,
        needles: tuple[str, ...]) -> None:
    """Refused with the settings, before the endpoint is called or the run directory exists
    (it used to exit 1 as "cannot reach the LLM endpoint notaurl (UnsupportedProtocol)")."""
    asked = len(stub.requests)
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    # A repeated flag takes its last value: these replace the stub's --base-url.
    code, _, err = cli(*_run_args(stub, tmp_path / "runs", "--config", str(config), *flags))
    _one_line_error(code, err, *needles)
    _nothing_written(tmp_path / "runs")
    assert len(stub.requests) == asked


def test_a_bad_endpoint_url_from_the_environment_is_bad_input(
        cli: Any, stub: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREDIO_LLM__BASE_URL", "notaurl")
    args = _run_args(stub, tmp_path / "runs")
    del args[args.index("--base-url"):args.index("--base-url") + 2]
    code, _, err = cli(*args)
    _one_line_error(code, err, "environment", "llm.base_url", "'notaurl' is not a URL")
    _nothing_written(tmp_path / "runs")


def test_a_bad_endpoint_url_is_reported_without_its_credentials(cli: Any, stub: Any,
                                                                 tmp_path: Path) -> None:
    for url in ("alice:s3cret-pw@example.org/v1", "ftp://alice:s3cret-pw@example.org/v1?key=k3y-123"):
        code, _, err = cli(*_run_args(stub, tmp_path / "runs", "--base-url", url))
        _one_line_error(code, err, "--base-url")
        assert "s3cret-pw" not in err and "k3y-123" not in err, err
    _nothing_written(tmp_path / "runs")


def test_unknown_culture_without_elicitation(cli: Any, stub: Any, tmp_path: Path) -> None:
    config = tmp_path / "job.toml"
    config.write_text("[memory]\nelicit_missing = false\n")
    args = _run_args(stub, tmp_path / "runs", "--config", str(config))
    args[args.index("Japan,China")] = "Japan,Atlantis"
    code, _, err = cli(*args)
    _one_line_error(code, err, "Atlantis")
    _nothing_written(tmp_path / "runs")


def test_misspelt_culture_is_not_sent_to_elicitation(cli: Any, stub: Any, tmp_path: Path) -> None:
    args = _run_args(stub, tmp_path / "runs")
    args[args.index("Japan,China")] = "Japan,Chnia"
    code, _, err = cli(*args)
    _one_line_error(code, err, "Chnia", "China")
    _nothing_written(tmp_path / "runs")
    assert not stub.requests  # nothing was asked of the model


def test_template_with_unknown_variable(cli: Any, stub: Any, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    code, _, err = cli("prompts", "init", str(prompts))
    assert code == 0, err
    template = prompts / "culture_expert_question.txt"
    template.write_text(template.read_text() + "\nAlso mind {{ no_such_variable }}.\n")
    code, _, err = cli(*_run_args(stub, tmp_path / "runs", "--prompts", str(prompts)))
    _one_line_error(code, err, "culture_expert_question", "no_such_variable")
    _nothing_written(tmp_path / "runs")


def _stats(cli: Any, memory: Path) -> Any:
    code, out, err = cli("memory", "stats", "--memory", str(memory), "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize(("name", "content", "needles"), [
    ("empty.jsonl", b"", ("empty.jsonl",)),
    ("blank.jsonl", b"\n  \n", ("blank.jsonl",)),
    ("broken.jsonl", b'{"culture": "Japan", "text": "Tea is served first."}\n{not json\n',
     ("broken.jsonl", "2")),
    ("latin1.jsonl", '{"culture": "France", "text": "Caf\xe9 au lait."}\n'.encode("latin-1"),
     ("latin1.jsonl",)),
    # A quote left open made the rest of the file one item, reported as a success.
    ("open_quote.csv", b'culture,text\nJapan,Tea is served first.\nJapan,"Shoes come off\n'
                       b'Korea,Kimchi is shared.\nKorea,People bow.\n',
     ("open_quote.csv: line 3: unterminated quote",)),
    ("open_header.csv", b'"culture,text\nJapan,Tea is served first.\n',
     ("open_header.csv: line 1: unterminated quote",)),
    ("closed_later.csv", b'culture,text\nJapan,"Shoes come off\nKorea,Kimchi is shared.\n'
                         b'Korea,"People bow",often\n',
     ("closed_later.csv: line 4: malformed CSV", "begins on line 2")),
])
def test_bad_knowledge_file(cli: Any, tmp_path: Path, name: str, content: bytes,
                            needles: tuple[str, ...]) -> None:
    memory = tmp_path / "memory"
    good = tmp_path / "good.jsonl"
    good.write_text('{"culture": "Japan", "text": "Shoes come off at the door.", "topic": "home"}\n')
    assert cli("memory", "ingest", str(good), "--memory", str(memory))[0] == 0
    before = _stats(cli, memory)
    path = tmp_path / name
    path.write_bytes(content)
    code, _, err = cli("memory", "ingest", str(path), "--memory", str(memory))
    _one_line_error(code, err, *needles)
    assert _stats(cli, memory) == before  # nothing of the bad file went in


def test_a_quoted_csv_field_may_span_lines(cli: Any, tmp_path: Path) -> None:
    """Strict reading refuses an open quote, not the quoting CSV allows."""
    path = tmp_path / "quoted.csv"
    path.write_text('culture,text\nJapan,"Shoes come off\nat the door."\nJapan,"Tea is ""always"" first."\n')
    code, out, err = cli("memory", "ingest", str(path), "--memory", str(tmp_path / "memory"))
    assert code == 0, err
    assert "2 items read" in out


def test_unreadable_knowledge_file(cli: Any, tmp_path: Path) -> None:
    folder = tmp_path / "not_a_file.jsonl"
    folder.mkdir()
    code, _, err = cli("memory", "ingest", str(folder), "--memory", str(tmp_path / "memory"))
    _one_line_error(code, err, "not_a_file.jsonl")
    code, _, err = cli("memory", "ingest", str(tmp_path / "missing.jsonl"),
                       "--memory", str(tmp_path / "memory"))
    _one_line_error(code, err, "missing.jsonl")


def test_memory_built_with_another_embedding_backend(cli: Any, stub: Any, tmp_path: Path) -> None:
    import numpy as np

    from caredio.memory.items import KnowledgeItem
    from caredio.memory.store import CulturalMemory

    class OtherEmbedder:
        backend = "other:toy-model"
        dim = 8

        def embed(self, texts: list[str]) -> Any:
            return np.ones((len(texts), 8), dtype=np.float32) / np.sqrt(8)

    memory_dir = tmp_path / "memory"
    other = CulturalMemory.open(OtherEmbedder(), path=str(memory_dir))
    other.add_knowledge([KnowledgeItem(culture="Japan", text="Tea first.", topic="food_drink")])
    del other
    args = _run_args(stub, tmp_path / "runs")
    args[args.index(":memory:")] = str(memory_dir)
    code, _, err = cli(*args)
    _one_line_error(code, err, "other:toy-model")
    _nothing_written(tmp_path / "runs")


def test_debug_shows_the_traceback(cli: Any, stub: Any, tmp_path: Path) -> None:
    code, _, err = cli("--debug", *_run_args(stub, tmp_path / "runs", "--concurrency", "0"))
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")


HOLD_MEMORY = """
import sys
from caredio.memory.store import CulturalMemory
from testing.jobs import HashEmbedder
memory = CulturalMemory.open(HashEmbedder(), path=sys.argv[1])
print("open", flush=True)
sys.stdin.read()  # hold it until the test closes our stdin
"""


def test_a_memory_directory_in_use_by_another_process_is_refused(cli: Any, tmp_path: Path) -> None:
    """Chroma's embedded client is not safe with two processes on one directory: the second
    is told which process holds it (a real second process, holding the real directory)."""
    import subprocess
    import sys

    from caredio.memory.store import CulturalMemory
    from testing.jobs import fake_cli_env

    memory_dir = tmp_path / "memory"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_MEMORY, str(memory_dir)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=fake_cli_env())
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        code, _, err = cli("memory", "stats", "--memory", str(memory_dir))
        _one_line_error(code, err, str(memory_dir), f"pid {holder.pid}", "--memory-url")
        code, _, err = cli("run", "--memory", str(memory_dir), "--out", str(tmp_path / "runs"),
                           "--base-url", "http://127.0.0.1:9/v1", "--quiet")
        _one_line_error(code, err, "in use by another caredio process")
        _nothing_written(tmp_path / "runs")
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    # Free again once the holder is gone; memories of one process share the directory.
    import caredio.memory.embeddings as embeddings

    first = CulturalMemory.open(embeddings.embedder_for("minilm"), path=memory_dir)
    second = CulturalMemory.open(embeddings.embedder_for("minilm"), path=memory_dir)
    assert first.count() == second.count()
    first.close()
    second.close()
    again = subprocess.run([sys.executable, "-c", HOLD_MEMORY, str(memory_dir)], input="",
                           text=True, env=fake_cli_env(), capture_output=True, timeout=120)
    assert again.returncode == 0 and again.stdout.strip() == "open", again.stderr
