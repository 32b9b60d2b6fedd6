"""`caredio review` on bad input: one line naming the file, line or field, exit 2, nothing
written and nothing listening. The real entry point, in process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testing.cli import in_process_cli


@pytest.mark.parametrize(("args", "reason"), [
    (["review", "{missing}"], "no such run directory"),
    (["review", "{empty}"], "not a run directory (no run.json or config.json)"),
    (["review", "{run}", "--reviewer", " "], "--reviewer: give your name"),
    (["review", "{run}", "--reviewer", "ana", "--port", "70000"], "--port: 70000 is not a port number"),
    # an address of no interface here (TEST-NET-1): nothing can listen on it
    (["review", "{run}", "--reviewer", "ana", "--host", "192.0.2.1"], "--host/--port: cannot listen on 192.0.2.1"),
    (["review", "open", "{bad_line}", "--reviewer", "ana"], "review.jsonl:2: sample_id: missing"),
    (["review", "{no_samples}", "--reviewer", "ana"], "dataset.jsonl: no samples to review yet"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], reason: str, stub_run: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    bad_line = tmp_path / "bad"
    bad_line.mkdir()
    for name in ("run.json", "config.json", "dataset.jsonl"):
        (bad_line / name).write_bytes((stub_run / name).read_bytes())
    good = {"id": "1", "reviewer": "ana", "time": "t", "sample_id": "s", "decision": "accept"}
    no_sample_id = {k: v for k, v in good.items() if k != "sample_id"}
    (bad_line / "review.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(no_sample_id) + "\n")
    no_samples = tmp_path / "no_samples"
    no_samples.mkdir()
    (no_samples / "run.json").write_text(json.dumps({"run_id": "x", "status": "running"}))
    paths = {"missing": tmp_path / "nope", "empty": empty, "run": stub_run, "bad_line": bad_line,
             "no_samples": no_samples}
    before = {p: sorted(x.name for x in p.iterdir()) for p in paths.values() if p.exists()}
    code, out, err = in_process_cli(monkeypatch, capsys)(*[a.format(**paths) for a in args])
    assert code == 2, err
    assert out == "" and len(err.strip().splitlines()) == 1 and reason in err, err
    assert {p: sorted(x.name for x in p.iterdir()) for p in paths.values() if p.exists()} == before
