"""Decisions bind: select and export leave rejected samples out and use edited text (the
original and the reviewer kept in metadata), --reviewed-only keeps to reviewed samples, the
report and compare count acceptance. On a real run (FAKE stub server and embedder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from caredio.review.binding import Verdict, load_binding
from caredio.review.session import ReviewSession
from caredio.tools.export import export, hf_rows, select_run
from testing.jobs import HashEmbedder

EDITED = "Rice, miso soup and grilled fish make a traditional breakfast. Green tea is drunk with most meals."


def review_three(run: Path) -> dict[str, str]:
    """Accept one sample, reject one, edit one (as the app does it): sample id -> what."""
    session = ReviewSession(run, "ana")
    ids = [entry.sample_id for entry in session.entries]
    session.decide(ids[0], "accept")
    session.decide(ids[1], "reject", "stereotype or offensive")
    session.edit(ids[2], session.detail(ids[2])["question"], EDITED)
    return {"accepted": ids[0], "rejected": ids[1], "edited": ids[2], "untouched": ids[3]}


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_honours_the_decisions(stub_run: Path, shared_fake_embedder: Any, tmp_path: Path) -> None:
    which = review_three(stub_run)
    path, count, review = export(stub_run, "openai", tmp_path / "all.jsonl")
    answers = {line["messages"][-1]["content"] for line in lines_of(path)}
    assert count == 3 and review == {"rejected": 1, "edited": 1, "accepted": 1}
    assert EDITED in answers
    rows = {r["id"]: r for r in json.loads(export(stub_run, "sharegpt", tmp_path / "s.json").path.read_text())}
    assert which["rejected"] not in rows
    edited = rows[which["edited"]]
    assert edited["conversations"][-1]["value"] == EDITED
    dataset = {line["metadata"]["sample_id"]: line for line in lines_of(stub_run / "dataset.jsonl")}
    original = dataset[which["edited"]]["messages"][-1]["content"]
    assert edited["review"]["original"]["response"] == original and edited["review"]["edited_by"] == "ana"
    assert edited["objective"] != dataset[which["edited"]]["metadata"]["objective"]  # re-scored
    assert rows[which["accepted"]]["review"] == {"status": "kept", "reviewers": ["ana"],
                                                 "time": rows[which["accepted"]]["review"]["time"]}
    assert "review" not in rows[which["untouched"]]
    only = export(stub_run, "openai", tmp_path / "reviewed.jsonl", reviewed_only=True)
    assert only.samples == 2 and only.review["unreviewed"] == 1


def test_select_leaves_rejected_out_and_export_of_the_selection_honours_a_later_reject(
        stub_run: Path, shared_fake_embedder: Any, tmp_path: Path) -> None:
    which = review_three(stub_run)
    result = select_run(stub_run, budget=10, embedder=HashEmbedder())
    picked = {p.sample_id for p in result.picks}
    assert which["rejected"] not in picked and result.review["rejected"] == 1
    selected = {line["metadata"]["sample_id"]: line for line in lines_of(stub_run / "selected.jsonl")}
    assert selected[which["edited"]]["messages"][-1]["content"] == EDITED
    assert {p.sample_id for p in select_run(stub_run, budget=10, embedder=HashEmbedder(),
                                           reviewed_only=True).picks} == {which["accepted"], which["edited"]}
    # A reviewer rejects the edited sample after the selection was written: export still leaves it out.
    ReviewSession(stub_run, "ana").decide(which["edited"], "reject", "factually wrong")
    out = export(stub_run, "openai", tmp_path / "sel.jsonl", selected=True)
    assert EDITED not in out.path.read_text() and out.review["rejected"] == 1


def test_one_reviewers_reject_keeps_a_sample_out_and_an_edit_survives_anothers_accept() -> None:
    def d(who: str, kind: str, response: str = "r", time: str = "1") -> Any:
        return {"id": who + kind + time, "reviewer": who, "time": time, "sample_id": "s", "decision": kind,
                "after": {"question": "q", "response": response}}

    assert Verdict("s", {"a": d("a", "accept"), "b": d("b", "reject")}).status == "rejected"
    both = Verdict("s", {"a": d("a", "edit", "better", "1"), "b": d("b", "accept", "r", "2")})
    assert both.status == "kept" and both.edit_for("q", "r")["after"]["response"] == "better"


def test_a_reviewed_line_is_reviewed_from_its_original_again(stub_run: Path, shared_fake_embedder: Any) -> None:
    """selected.jsonl holds reviewed lines; reviewing one again must not stack edits."""
    from caredio.review.binding import reviewed_line

    which = review_three(stub_run)
    binding = load_binding(stub_run)
    line = next(x for x in lines_of(stub_run / "dataset.jsonl") if x["metadata"]["sample_id"] == which["edited"])
    once = reviewed_line(line, binding.verdicts[which["edited"]])
    assert reviewed_line(once, binding.verdicts[which["edited"]]) == once


def test_the_report_shows_progress_and_acceptance_by_culture_and_topic(
        stub_run: Path, shared_fake_embedder: Any) -> None:
    from caredio.rundir.reader import open_run
    from caredio.tools.report import render_html

    which = review_three(stub_run)
    page = render_html(open_run(stub_run), {})
    assert "<h2>Human review</h2>" in page
    assert "3 of 4 samples reviewed (2 kept, 1 of them edited; 1 rejected)" in page
    culture = which["rejected"].split("-")[0].capitalize()
    assert f"<tr><td>{culture}</td>" in page and "stereotype or offensive: 1" in page
    assert "<th>topic</th>" in page


def test_compare_shows_acceptance_per_run_with_its_interval(
        stub_run: Path, shared_fake_embedder: Any, tmp_path: Path) -> None:
    from caredio.tools.compare import compare
    from caredio.tools.compare_runs import HUMAN, RUNS

    other = tmp_path / "other"
    shutil.copytree(stub_run, other)
    review_three(stub_run)  # 2 kept of 3 reviewed
    session = ReviewSession(other, "ben")
    for entry in session.entries:
        session.decide(entry.sample_id, "accept")
    comparison = compare([stub_run, other], [RUNS])
    row = next(r for r in comparison.rows if r.metric == HUMAN and r.group == "all")
    assert (row.estimates[0].n, row.estimates[1].n) == (3, 4)
    assert row.estimates[0].mean == pytest.approx(2 / 3) and row.estimates[1].mean == 1.0
    assert row.estimates[0].low < row.estimates[0].mean <= row.estimates[0].high
    assert any(line.startswith("By the reviewers") for line in comparison.verdicts())


def test_hf_rows_carry_the_review_as_json(stub_run: Path, shared_fake_embedder: Any) -> None:
    from caredio.review.binding import honour_reviews

    which = review_three(stub_run)
    lines, _ = honour_reviews(stub_run, lines_of(stub_run / "dataset.jsonl"), reviewed_only=False)
    rows = {r["sample_id"]: r for r in hf_rows(lines)}
    assert json.loads(rows[which["edited"]]["review"])["original"]["response"]
    assert rows[which["untouched"]]["review"] == "{}"
