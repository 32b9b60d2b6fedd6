"""`caredio eval` and `caredio compare` through the real CLI entry point, against the FAKE stub
server (testing/stub_server.py). The stub is no model: it checks our own logic —
files, grading of what comes back, leakage exclusion, resume, failure isolation, bad input,
pairing in compare. The stub "oracle" replies with the fixture's own answers, the "dunce"
with nonsense, so the measured accuracies are known in advance (1.0 and 0.0).
The real model is driven by tests/test_eval_e2e.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from caredio.memory.items import KnowledgeItem
from caredio.memory.store import CulturalMemory
from caredio.rundir.files import read_jsonl
from testing.cli import in_process_cli
from testing.eval_fixtures import COUNTRY_ANSWERS, blend_entry, snack_files
from testing.jobs import HashEmbedder
from testing.stub_server import FaultPlan, StubOpenAIServer

MAJORITY = {country: answers[0][0][0] for country, answers in COUNTRY_ANSWERS.items()}
EXTRA = {country: {"Q2": blend_entry(f"What do people drink at breakfast in {country}?",
                                     [([f"{country.lower()} tea"], 3)])}
         for country in COUNTRY_ANSWERS}


def oracle(body: dict[str, Any]) -> str:
    """Answers as the fixture's annotators did: the country's majority answer."""
    prompt = body["messages"][-1]["content"]
    country = re.search(r" in (\w+)\?", prompt).group(1)  # type: ignore[union-attr]
    if "answer_choice" not in prompt:
        return f"{country.lower()} tea" if "drink" in prompt else MAJORITY[country]
    for letter, option in re.findall(r"^([A-D])\. (.+)$", prompt, re.MULTILINE):
        if option == MAJORITY[country]:
            return json.dumps({"answer_choice": letter})
    raise AssertionError(f"the correct option is missing from {prompt!r}")


def dunce(body: dict[str, Any]) -> str:
    return "I could not say."


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    return in_process_cli(monkeypatch, capsys)


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    return [str(p) for p in snack_files(tmp_path / "blend", EXTRA)]


def _one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0], err


def test_eval_grades_what_the_endpoint_says_and_records_everything(cli: Any, files: list[str], tmp_path: Path) -> None:
    with StubOpenAIServer(responder=oracle) as stub:
        code, out, err = cli("eval", *files, "--base-url", stub.url, "--out", str(tmp_path / "good"), "--json")
        requests = list(stub.requests)
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "completed" and result["failed"] == 0 and result["pending"] == 0
    for task in ("saq", "mcq"):
        for country, estimate in result["results"][task].items():
            assert estimate["mean"] == 1.0, (task, country)
    assert result["results"]["saq"]["all"]["n"] == 12  # 6 countries x Q1, Q2
    assert result["counts"]["mcq"]["Alpha"] == {"questions": 2, "excluded": 0, "ineligible": 1,
                                               "eligible": 1, "items": 1}  # Q2: no 3 distractors
    eval_dir = tmp_path / "good"
    items = read_jsonl(eval_dir / "items.jsonl")
    answers = read_jsonl(eval_dir / "answers.jsonl")
    assert len(requests) == len(items) == len(answers) == result["answered"]
    assert all(r["temperature"] == 0.0 and r["max_tokens"] == 32 for r in requests)
    by_id = {a["item_id"]: a for a in answers}
    for item in items:
        answer = by_id[item["item_id"]]
        assert answer["messages"] == item["messages"] and answer["reply"] and answer["correct"] is True
    assert (eval_dir / "accuracy.png").read_bytes()[:4] == b"\x89PNG"

    with StubOpenAIServer(responder=dunce) as stub:
        code, out, err = cli("eval", *files, "--base-url", stub.url, "--out", str(tmp_path / "bad"), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["results"]["saq"]["all"]["mean"] == 0.0
    assert result["results"]["mcq"]["all"]["mean"] == 0.0
    assert result["mcq_unparsed"] == result["results"]["mcq"]["all"]["n"]


def test_exclude_memory_leaves_out_and_counts_the_questions_it_holds(cli: Any, files: list[str], tmp_path: Path) -> None:
    memory_dir = tmp_path / "memory"
    CulturalMemory.open(HashEmbedder(), path=memory_dir).add_knowledge(
        [KnowledgeItem(culture="Alpha", text="Snacks: rice.", question_id="Q1")])
    with StubOpenAIServer(responder=oracle) as stub:
        code, _, err = cli("eval", *files, "--task", "saq", "--base-url", stub.url,
                           "--exclude-memory", str(memory_dir), "--out", str(tmp_path / "e"))
        assert code == 0, err
        assert "1 questions found in memory (by id 1, by text 0): excluded for every country" in err
        assert "short answer: 6 items over 6 countries (6 excluded as leaked, 0 ineligible)" in err
        items = read_jsonl(tmp_path / "e" / "items.jsonl")
        assert {i["question_id"] for i in items} == {"Q2"}
        excluded = read_jsonl(tmp_path / "e" / "excluded.jsonl")
        assert sorted(r["country"] for r in excluded) == sorted(COUNTRY_ANSWERS)
        assert {r["matched_by"] for r in excluded} == {"id"}

        code, _out, err = cli("eval", *files, "--task", "saq", "--base-url", stub.url, "--keep-leaked",
                             "--exclude-memory", str(memory_dir), "--out", str(tmp_path / "k"))
        assert code == 0, err
        assert "kept and marked (--keep-leaked)" in err
        items = read_jsonl(tmp_path / "k" / "items.jsonl")
        assert {i["question_id"] for i in items if i["leaked"]} == {"Q1"}
        record = json.loads((tmp_path / "k" / "eval.json").read_text())
        assert record["leakage"]["kept"] is True and record["leakage"]["questions_found"] == 1


def test_eval_without_a_leak_check_says_so(cli: Any, files: list[str], tmp_path: Path) -> None:
    with StubOpenAIServer(responder=oracle) as stub:
        code, _, err = cli("eval", *files[:1], "--task", "saq", "--base-url", stub.url, "--out", str(tmp_path / "n"))
    assert code == 0, err
    assert "note: no leakage check" in err


def test_resume_asks_only_what_has_no_answer(cli: Any, files: list[str], tmp_path: Path) -> None:
    eval_dir = tmp_path / "r"
    with StubOpenAIServer(responder=oracle) as stub:
        code, _, err = cli("eval", *files, "--base-url", stub.url, "--out", str(eval_dir), "-q")
        assert code == 0, err
        lines = (eval_dir / "answers.jsonl").read_text().splitlines()
        total = len(lines)
        # A crash after three answers, the fourth line torn mid-write.
        (eval_dir / "answers.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
        record = json.loads((eval_dir / "eval.json").read_text())
        (eval_dir / "eval.json").write_text(json.dumps({**record, "status": "interrupted"}))
        before = len(stub.requests)
        code, out, err = cli("eval", "--resume", str(eval_dir), "--json")
        assert code == 0, err
        assert len(stub.requests) - before == total - 3
    answers = read_jsonl(eval_dir / "answers.jsonl")
    assert len({a["item_id"] for a in answers}) == total == len(answers)
    assert json.loads(out)["results"]["saq"]["all"]["mean"] == 1.0


def test_a_failed_item_is_recorded_the_rest_go_on_and_resume_retries_it(cli: Any, files: list[str], tmp_path: Path) -> None:
    eval_dir = tmp_path / "f"
    with StubOpenAIServer(responder=oracle, faults=FaultPlan(script=("bad_request",))) as stub:
        code, out, err = cli("eval", *files, "--base-url", stub.url, "--out", str(eval_dir), "--json",
                             "--concurrency", "1")
        assert code == 0, err
        result = json.loads(out)
        assert result["failed"] == 1 and result["status"] == "completed"
        assert f"caredio eval --resume {eval_dir}" in err
        failed = [a for a in read_jsonl(eval_dir / "answers.jsonl") if a["error"]]
        assert len(failed) == 1 and "400" in failed[0]["error"]
        before = len(stub.requests)
        code, out, err = cli("eval", "--resume", str(eval_dir), "--json")
        assert code == 0, err
        assert len(stub.requests) - before == 1
        assert json.loads(out)["failed"] == 0


def test_compare_pairs_identical_items_and_says_who_wins(cli: Any, files: list[str], tmp_path: Path) -> None:
    dirs = {}
    for name, responder, seed in (("base", dunce, "0"), ("tuned", oracle, "0"), ("reseeded", oracle, "5")):
        with StubOpenAIServer(responder=responder) as stub:
            code, _, err = cli("eval", *files, "--base-url", stub.url, "--seed", seed,
                               "--out", str(tmp_path / name), "-q")
            assert code == 0, err
        dirs[name] = str(tmp_path / name)
    code, out, err = cli("compare", dirs["base"], dirs["tuned"], dirs["reseeded"], "--json",
                         "--plot", str(tmp_path / "cmp.png"))
    assert code == 0, err
    result = json.loads(out)
    rows = {(r["metric"], r["group"]): r for r in result["rows"]}
    saq, mcq = rows[("saq accuracy", "all")], rows[("mcq accuracy", "all")]
    tuned_saq, reseeded_saq = saq["differences"]
    assert tuned_saq["mean"] == 1.0 and tuned_saq["n"] == 12 and tuned_saq["ci_low"] == 1.0
    assert reseeded_saq["n"] == 12  # short-answer prompts do not depend on the seed
    tuned_mcq, reseeded_mcq = mcq["differences"]
    assert tuned_mcq["n"] == mcq["values"]["base"]["n"] > 0
    # Another seed shuffles the options: those items are different questions, never paired.
    assert reseeded_mcq["n"] < mcq["values"]["base"]["n"]
    assert reseeded_mcq["only_in_base"] == mcq["values"]["base"]["n"] - reseeded_mcq["n"]
    verdicts = "\n".join(result["verdicts"])
    assert "saq accuracy: tuned is higher than base by +1.000" in verdicts
    assert "outside the 95% interval" in verdicts
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    assert any("no leakage check" in note for d in result["directories"] for note in d["notes"])

    code, out, err = cli("compare", dirs["base"], dirs["tuned"])
    assert code == 0, err
    assert "tuned is higher than base" in out


def test_compare_run_directories_pairs_samples(cli: Any, tmp_path: Path) -> None:
    def run(name: str, objective: float) -> str:
        directory = tmp_path / name
        directory.mkdir()
        (directory / "run.json").write_text(json.dumps({"run_id": name, "status": "completed"}))
        lines = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}],
                  "metadata": {"sample_id": f"s{i}", "culture": "Japan", "objective": objective + i / 100,
                               "representativeness": 0.5, "distinctiveness": 0.5}} for i in range(10)]
        (directory / "dataset.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        return str(directory)

    code, out, err = cli("compare", run("loop", 0.6), run("one_shot", 0.4), "--json")
    assert code == 0, err
    rows = {(r["metric"], r["group"]): r for r in json.loads(out)["rows"]}
    diff = rows[("objective", "Japan")]["differences"][0]
    assert diff["n"] == 10 and diff["mean"] == pytest.approx(-0.2)


# -- bad input: one line, exit 2, nothing written ------------------------------------------------


@pytest.mark.parametrize(("content", "needle"), [
    ('{"culture": "Alpha", "text": "x"}\n{"culture": "Alpha", "text": "y"}\n', "not valid JSON"),
    ('[{"en_question": "q"}]', "expected a JSON object keyed by question id"),
    ('{"Q1": {"question": "q", "annotations": []}}', "field 'en_question' is missing"),
    ('{"Q1": {"en_question": "q", "annotations": [{"en_answers": ["a"], "count": "2"}]}}', "count is not a positive integer"),
])
def test_a_file_that_is_not_blend_shaped_is_refused(cli: Any, files: list[str], tmp_path: Path, content: str, needle: str) -> None:
    bad = tmp_path / "Omega_data.json"
    bad.write_text(content)
    code, _out, err = cli("eval", *files, str(bad), "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "o"))
    _one_line_error(code, err, str(bad))
    assert needle in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["nonexistent.json", "Narnia_data.json"])
def test_a_file_that_does_not_exist_is_reported_as_not_found(cli: Any, files: list[str], tmp_path: Path,
                                                             name: str) -> None:
    """Not "cannot tell the country from the file name": the file is not there at all."""
    missing = tmp_path / name
    code, _, err = cli("eval", *files, str(missing), "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "o"))
    _one_line_error(code, err, f"{missing}: file not found")
    assert not (tmp_path / "o").exists()
    folder = tmp_path / "Omega_data.json"
    folder.mkdir()
    code, _, err = cli("eval", *files, str(folder), "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "o"))
    _one_line_error(code, err, f"{folder}: is a directory")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["--countries", "Narnia"], "--countries: unknown country 'Narnia'"),
    (["--countries", "Alpah"], "did you mean 'Alpha'?"),
    (["--task", "essay"], "--task: unknown task 'essay'"),
    (["--max-questions", "0"], "--max-questions: must be at least 1"),
    (["--exclude-memory", "/nonexistent/memory"], "no such memory directory"),
    (["--against", "/nonexistent/run"], "no such run directory"),
])
def test_bad_options_are_refused_before_anything_is_written(cli: Any, files: list[str], tmp_path: Path, args: list[str], needle: str) -> None:
    code, _, err = cli("eval", *files, *args, "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "o"))
    _one_line_error(code, err, needle)
    assert not (tmp_path / "o").exists()


def test_multiple_choice_needs_four_countries(cli: Any, files: list[str], tmp_path: Path) -> None:
    code, _, err = cli("eval", *files[:3], "--task", "mcq", "--base-url", "http://127.0.0.1:9/v1")
    _one_line_error(code, err, "needs BLEnD files of at least 4 countries")


def test_an_eval_directory_holding_another_eval_is_refused_and_left_alone(cli: Any, files: list[str], tmp_path: Path) -> None:
    eval_dir = tmp_path / "taken"
    with StubOpenAIServer(responder=oracle) as stub:
        code, _, err = cli("eval", *files, "--task", "saq", "--base-url", stub.url, "--out", str(eval_dir), "-q")
        assert code == 0, err
        before = {p.name: p.read_bytes() for p in eval_dir.iterdir()}
        code, _, err = cli("eval", *files, "--base-url", stub.url, "--out", str(eval_dir))
        _one_line_error(code, err, "already holds an eval")
        assert f"caredio eval --resume {eval_dir}" in err
        assert {p.name: p.read_bytes() for p in eval_dir.iterdir()} == before
    run_dir = tmp_path / "a_run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    code, _, err = cli("eval", *files, "--base-url", "http://127.0.0.1:9/v1", "--out", str(run_dir))
    _one_line_error(code, err, "holds a run")
    assert [p.name for p in run_dir.iterdir()] == ["run.json"]


def test_resume_and_compare_refuse_what_is_not_theirs(cli: Any, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    code, _, err = cli("eval", "--resume", str(plain))
    _one_line_error(code, err, "not an eval directory")
    code, _, err = cli("compare", str(plain))
    _one_line_error(code, err, "at least two directories")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    eval_dir = tmp_path / "ev"
    eval_dir.mkdir()
    (eval_dir / "eval.json").write_text(json.dumps({"kind": "caredio-eval"}))
    code, _, err = cli("compare", str(eval_dir), str(run_dir))
    _one_line_error(code, err, "directories of different kinds cannot be compared")
    code, _, err = cli("compare", str(eval_dir), str(plain))
    _one_line_error(code, err, "neither an eval directory")


def test_an_endpoint_that_goes_down_stops_the_eval_and_resume_finishes_it(cli: Any, files: list[str], tmp_path: Path) -> None:
    state = {"answered": 0}

    def rule(body: dict[str, Any]) -> str | None:
        state["answered"] += 1
        return "drop" if state["answered"] > 4 else None  # the connection drops from request 5 on

    config = tmp_path / "fast.toml"
    config.write_text("[llm]\nmax_retries = 2\nbackoff = 0.01\ndown_after = 0.2\n")
    eval_dir = tmp_path / "down"
    with StubOpenAIServer(responder=oracle, faults=FaultPlan(rule=rule)) as stub:
        code, _, err = cli("eval", *files, "--base-url", stub.url, "--config", str(config), "--out", str(eval_dir),
                           "--concurrency", "1", "-q")
        assert code == 1, err
        assert "is down" in err and f"caredio eval --resume {eval_dir}" in err
        record = json.loads((eval_dir / "eval.json").read_text())
        assert record["status"] == "failed" and "EndpointDown" in record["error"]
        assert record["answered"] == 4 and record["pending"] + record["failed"] == record["planned"] - 4
        state["answered"] = -1000  # the endpoint is back
        code, out, err = cli("eval", "--resume", str(eval_dir), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "completed" and result["answered"] == record["planned"]
    assert result["results"]["mcq"]["all"]["mean"] == 1.0
