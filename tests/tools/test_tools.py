"""trace, select, export and report on a real run directory made by the graph in this session.

``demo_run`` (tests/conftest.py) runs the real graph on the embedded llama.cpp server once per
session; each test here works on a copy of its directory, so the tools' outputs never change
what the end-to-end tests read.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from caredio.cli.main import cli
from caredio.rundir.files import read_jsonl

pytestmark = pytest.mark.e2e
runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def caredio(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed entry point, so exit codes are the real ones (2 for bad input)."""
    return subprocess.run([sys.executable, "-m", "caredio.cli.main", *args], capture_output=True,
                          text=True, timeout=300, env={"COLUMNS": "160", "PATH": "/usr/bin:/bin",
                                                       "HF_HUB_OFFLINE": "1"})


def invoke(*args: str) -> Any:
    result = runner.invoke(cli, list(args), env={"COLUMNS": "160"})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps at 80 columns when stdout is not a terminal; assertions want whole lines."""
    from caredio.cli import main

    monkeypatch.setattr(main.console, "width", 200)


@pytest.fixture
def run(demo_run: dict[str, Any], tmp_path: Path) -> Path:
    record = json.loads((demo_run["run_dir"] / "run.json").read_text())
    if record.get("status") != "completed" or not record.get("completed"):
        pytest.fail(f"the session's demo run did not complete ({record.get('status')}, "
                    f"{record.get('failures') or record.get('error')}); the tools need a real run")
    target = tmp_path / "demo"
    shutil.copytree(demo_run["run_dir"], target)
    return target


# -- trace -----------------------------------------------------------------------------------

def test_trace_shows_each_turn_with_template_hash_cost_and_scores(run: Path) -> None:
    turns = [t for t in read_jsonl(run / "trace.jsonl") if t["agent"] == "refiner"]
    assert turns
    result = invoke("trace", str(run), "--agent", "refiner")
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.count("refiner · refine_") == len(turns)
    for turn in turns:
        assert f"{turn['template']}  #{turn['template_hash']}" in out
        assert f"{turn['input_tokens']} in / {turn['output_tokens']} out tokens" in out
    assert re.search(r"R \d\.\d{3}  D \d\.\d{3}  J \d\.\d{3}  →  R \d\.\d{3}", out)
    run_id = json.loads((run / "run.json").read_text())["run_id"]
    assert f"{len(turns)} of " in out and f"turns · run {run_id}" in out


def test_trace_json_filters_by_agent_and_round(run: Path) -> None:
    expected = [t for t in read_jsonl(run / "trace.jsonl")
                if t["agent"] == "contrast_critic" and t["round"] == 1]
    assert expected
    result = invoke("trace", str(run), "--json", "--agent", "contrast_critic", "--round", "1")
    assert result.exit_code == 0
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert printed == expected


def test_trace_full_shows_whole_prompt_and_head_is_shorter(run: Path) -> None:
    turn = max(read_jsonl(run / "trace.jsonl"), key=lambda t: len(t["messages"][-1]["content"]))
    args = ("trace", str(run), "--sample", turn["sample_id"], "--agent", turn["agent"],
            "--round", str(turn["round"]))
    head, full = invoke(*args), invoke(*args, "--full")
    assert "--full shows all" in head.output
    assert "[system]" in full.output and "--full shows all" not in full.output
    assert len(full.output) > len(head.output)


def test_trace_sample_view_shows_trajectory_with_scores(run: Path) -> None:
    versions = read_jsonl(run / "trajectories.jsonl")
    sample = max({v["sample_id"] for v in versions},
                 key=lambda s: sum(v["sample_id"] == s for v in versions))
    mine = [v for v in versions if v["sample_id"] == sample]
    assert len(mine) >= 2
    result = invoke("trace", str(run), "--sample", sample)
    assert result.exit_code == 0
    assert f"trajectory of {sample}" in result.output
    for version in mine:
        assert f"{sample} · round {version['round']} · {version['step']}" in result.output
        assert f"J {version['objective']:.3f}" in result.output
    assert result.output.count("★ best") == 1


def test_trace_follow_on_a_finished_run_prints_all_and_returns(run: Path) -> None:
    result = invoke("trace", str(run), "--follow", "--json")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == len(read_jsonl(run / "trace.jsonl"))


# -- select ----------------------------------------------------------------------------------

def test_select_per_culture_and_global_write_selected_and_explain(run: Path) -> None:
    dataset = read_jsonl(run / "dataset.jsonl")
    cultures = {line["metadata"]["culture"] for line in dataset}
    result = invoke("select", str(run), "--budget", "1")
    assert result.exit_code == 0, result.output
    selected = read_jsonl(run / "selected.jsonl")
    assert sorted(s["metadata"]["culture"] for s in selected) == sorted(cultures)
    assert "nearest already picked" in result.output
    result = invoke("select", str(run), "--budget", "1", "--global", "--diversity", "0.3")
    assert result.exit_code == 0
    selected = read_jsonl(run / "selected.jsonl")
    assert len(selected) == 1
    assert selected[0]["metadata"]["objective"] == max(d["metadata"]["objective"] for d in dataset)


def test_select_never_picks_what_an_earlier_run_accepted_into_memory(run: Path) -> None:
    """The demo run accepted its samples into the shared memory; a later run holding the same
    samples must not select them again."""
    record = json.loads((run / "run.json").read_text())
    earlier = record["run_id"]
    record["run_id"] = "later-run"
    (run / "run.json").write_text(json.dumps(record))
    result = invoke("select", str(run), "--budget", "5")
    assert result.exit_code == 0, result.output
    assert read_jsonl(run / "selected.jsonl") == []
    skipped = re.findall(r"skipped (\S+): near-duplicate of (\S+)", result.output)
    assert sorted(a for a, b in skipped) == sorted(
        d["metadata"]["sample_id"] for d in read_jsonl(run / "dataset.jsonl"))
    # each is the same sample, accepted into memory by the earlier run (as run_id/sample_id)
    assert all(b == f"{earlier}/{a}" for a, b in skipped)


# -- export ----------------------------------------------------------------------------------

def test_export_openai_jsonl_has_only_messages(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "openai.jsonl"
    result = invoke("export", str(run), "--format", "openai", "--out", str(out))
    assert result.exit_code == 0, result.output
    dataset = read_jsonl(run / "dataset.jsonl")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["messages"] for line in lines] == [d["messages"] for d in dataset]
    assert all(set(line) == {"messages"} for line in lines)


def test_export_sharegpt_of_the_selection(run: Path, tmp_path: Path) -> None:
    assert invoke("select", str(run), "--budget", "1").exit_code == 0
    out = tmp_path / "share.json"
    result = invoke("export", str(run), "--format", "sharegpt", "--out", str(out), "--selected")
    assert result.exit_code == 0
    records = json.loads(out.read_text())
    selected = read_jsonl(run / "selected.jsonl")
    assert [r["id"] for r in records] == [s["metadata"]["sample_id"] for s in selected]
    for record, line in zip(records, selected, strict=True):
        assert [c["from"] for c in record["conversations"]] == ["human", "gpt"]
        assert record["conversations"][1]["value"] == line["messages"][-1]["content"]


def test_export_hf_loads_with_datasets_and_has_a_card(run: Path, tmp_path: Path) -> None:
    from datasets import load_from_disk

    out = tmp_path / "hf"
    result = invoke("export", str(run), "--format", "hf", "--out", str(out))
    assert result.exit_code == 0, result.output
    data = load_from_disk(str(out))
    dataset = read_jsonl(run / "dataset.jsonl")
    assert len(data) == len(dataset)
    assert data[0]["messages"] == dataset[0]["messages"]
    assert {"culture", "topic", "objective", "attribution"} <= set(data.column_names)
    card = (out / "README.md").read_text()
    run_json = json.loads((run / "run.json").read_text())
    for culture in {d["metadata"]["culture"] for d in dataset}:
        assert f"| {culture} |" in card
    assert run_json["model"] in card
    for template_hash in run_json["template_hashes"].values():
        assert template_hash in card
    assert "starter" in card and "Apache-2.0" in card
    # exporting again replaces the folder in one step
    assert invoke("export", str(run), "--format", "hf", "--out", str(out)).exit_code == 0
    assert len(load_from_disk(str(out))) == len(dataset)


# -- report ----------------------------------------------------------------------------------

class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if tag == "img" and name == "src":
                self.sources.append(value or "")
            elif name in ("href", "src"):
                self.links.append(value or "")


def test_report_is_one_self_contained_html_with_the_png_figures(run: Path) -> None:
    result = invoke("report", str(run))
    assert result.exit_code == 0, result.output
    pngs = sorted(run.glob("report_*.png"))
    names = ("scores_by_round", "first_vs_best", "coverage", "cost_by_agent")
    assert [p.name for p in pngs] == sorted(f"report_{n}.png" for n in names)
    parser = _Images()
    page = (run / "report.html").read_text()
    parser.feed(page)
    assert len(parser.sources) == 4 and not parser.links
    embedded = set()
    for src in parser.sources:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        data = base64.b64decode(src[len(prefix):], validate=True)
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
        embedded.add(data)
    assert embedded == {p.read_bytes() for p in pngs}
    for sample_id in {v["sample_id"] for v in read_jsonl(run / "trajectories.jsonl")}:
        assert sample_id in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(run: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from screenshot_report import screenshot

    assert invoke("report", str(run)).exit_code == 0
    shot = screenshot(run / "report.html", tmp_path / "shot.png", height=1600)
    assert shot.read_bytes().startswith(PNG_MAGIC)


# -- bad input: exit 2, one line naming the file or field, nothing written -------------------

def test_bad_input_exits_2_with_a_reason_and_writes_nothing(run: Path, tmp_path: Path) -> None:
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    cases = [
        (("trace", str(not_a_run)), "not a run directory"),
        (("trace", str(run), "--agent", "critic"), "--agent"),
        (("trace", str(run), "--sample", "nope"), "--sample"),
        (("select", str(run), "--budget", "0"), "--budget"),
        (("select", str(run), "--budget", "1", "--diversity", "-1"), "--diversity"),
        (("export", str(run), "--format", "csv", "--out", str(tmp_path / "x.csv")), "--format"),
        (("export", str(run), "--format", "openai", "--selected", "--out", str(tmp_path / "y")),
         "selected.jsonl"),
        (("report", str(not_a_run)), "not a run directory"),
    ]
    (run / "selected.jsonl").unlink()
    before = sorted(p.name for p in run.iterdir())
    for args, reason in cases:
        result = caredio(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert reason in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(p.name for p in run.iterdir()) == before
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y").exists()
    assert list(not_a_run.iterdir()) == []
