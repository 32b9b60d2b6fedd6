"""The evidence is stored with every version and dataset line, and shown by `caredio trace`,
`caredio score --explain` and the HTML report.

The run is the real graph against the FAKE stub server with the FAKE hash embedder: this is
about recording and display (the labels themselves are tested on MiniLM in
tests/memory/test_evidence.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from caredio.run.runner import start_run
from caredio.rundir.files import read_jsonl
from testing.cli import in_process_cli
from testing.jobs import stub_settings
from testing.stub_server import StubOpenAIServer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from testing.jobs import HashEmbedder

    out = tmp_path_factory.mktemp("runs")
    with StubOpenAIServer() as stub:
        settings = stub_settings(stub.url, str(out), rounds=1)
        path, record = start_run(settings, lambda kind, data: None, embedder=HashEmbedder())
    assert record["status"] == "completed"
    return path


def test_every_version_and_dataset_line_carries_its_evidence(run_dir: Path) -> None:
    versions = read_jsonl(run_dir / "trajectories.jsonl")
    assert versions
    for version in versions:
        evidence = version["evidence"]
        assert evidence, version["sample_id"]
        for entry in evidence:
            if "span" in entry:
                start, end = entry["span"]
                assert 0 <= start < end <= len(version["response"])
            else:
                assert entry["text"]
    by_key = {(v["sample_id"], v["round"]): v for v in versions}
    for line in read_jsonl(run_dir / "dataset.jsonl"):
        meta = line["metadata"]
        assert meta["evidence"] == by_key[(meta["sample_id"], meta["best_round"])]["evidence"]


def test_trace_score_and_report_show_it(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    cli = in_process_cli(monkeypatch, capsys)
    line = read_jsonl(run_dir / "dataset.jsonl")[0]
    sample = line["metadata"]["sample_id"]
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = cli("trace", str(run_dir), "--sample", sample, "--agent", "refiner")
    assert code == 0, err
    labels = [entry["label"] for entry in line["metadata"]["evidence"]]
    assert "evidence" in out and f"[{labels[0]}]" in out
    assert "[supported] supported by the culture's knowledge" in out  # the legend

    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    # An answer holding markup is shown as text in the report, never run.
    answer = "<script>alert('x')</script> People bow."
    hostile: dict[str, Any] = json.loads(json.dumps(line))
    hostile["messages"][-1]["content"] = answer
    hostile["metadata"]["evidence"] = [{**line["metadata"]["evidence"][0], "span": [0, len(answer)]}]
    (copy / "dataset.jsonl").write_text(json.dumps(hostile) + "\n")
    (copy / "selected.jsonl").unlink()
    code, out, err = cli("report", str(copy))
    assert code == 0, err
    page = (copy / "report.html").read_text()
    assert "Evidence: why each sentence scored as it did" in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; People bow." in page
    assert "<script>alert" not in page


def test_score_explain_json_resolves_the_items_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str],
                                                        embedder: Any) -> None:
    """Real MiniLM here: the JSON is the contract a user scripts against."""
    import caredio.memory.embeddings as embeddings

    monkeypatch.setitem(embeddings._shared, embeddings.shared_key("minilm"), embedder)
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"culture": "Japan", "question": "How do people greet each other?",
                                   "response": "People bow when they greet. Children play football."}) + "\n")
    cli = in_process_cli(monkeypatch, capsys)
    code, out, err = cli("score", str(samples), "--memory", ":memory:", "--contrast", "China,South Korea",
                         "--explain", "--json")
    assert code == 0, err
    row = json.loads(out)
    first = row["evidence"][0]
    assert first["span"] == [0, len("People bow when they greet.")]
    item_id, similarity, text = first["support"][0]
    assert item_id.startswith("starter-japan-") and text and similarity > 0
    assert row["evidence"][1]["label"] == "off_topic"
    code, plain, _ = cli("score", str(samples), "--memory", ":memory:", "--contrast", "China,South Korea", "--json")
    assert "evidence" not in json.loads(plain)
