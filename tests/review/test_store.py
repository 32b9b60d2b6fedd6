"""review.jsonl: appended whole at once, read back with what stands, undo as a stack, a torn line
skipped with a warning naming it, a bad whole line refused naming its line and field. Real files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from caredio.errors import UserInputError
from caredio.review.store import ReviewLog, read_decisions

TEXT = {"question": "q?", "response": "r."}


def decide(log: ReviewLog, sample: str, decision: str, reviewer: str = "ana", **extra: object) -> dict:
    return dict(log.append({"reviewer": reviewer, "sample_id": sample, "decision": decision,
                            "before": TEXT, "after": TEXT, **extra}))


def test_every_decision_is_on_disk_when_append_returns(tmp_path: Path) -> None:
    log = ReviewLog.open(tmp_path)
    decide(log, "s1", "accept")
    decide(log, "s2", "reject", reason="stereotype or offensive")
    # What another process (a restarted server) reads: the file alone.
    fresh = ReviewLog.open(tmp_path)
    assert {s: d["decision"] for s, d in fresh.mine("ana").items()} == {"s1": "accept", "s2": "reject"}
    lines = (tmp_path / "review.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["time"].endswith("Z") for line in lines)
    assert json.loads(lines[1])["reason"] == "stereotype or offensive"


def test_a_later_decision_replaces_an_earlier_and_undo_goes_back_one_at_a_time(tmp_path: Path) -> None:
    log = ReviewLog.open(tmp_path)
    first = decide(log, "s1", "accept")
    second = decide(log, "s1", "reject", reason="duplicate of another sample")
    decide(log, "s1", "accept", reviewer="ben")  # another reviewer's decision is not ours to undo
    assert log.mine("ana")["s1"]["id"] == second["id"]
    assert log.last_standing("ana")["id"] == second["id"]
    log.append({"reviewer": "ana", "sample_id": "s1", "decision": "undo", "undoes": second["id"]})
    assert log.mine("ana")["s1"]["id"] == first["id"]  # back to the accept
    log.append({"reviewer": "ana", "sample_id": "s1", "decision": "undo", "undoes": first["id"]})
    assert "s1" not in log.mine("ana") and log.last_standing("ana") is None
    assert log.mine("ben")["s1"]["decision"] == "accept"
    assert ReviewLog.open(tmp_path).standing() == log.standing()  # the same, read from disk


def test_a_torn_line_is_skipped_with_a_warning_naming_it_and_nothing_else_is_lost(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = ReviewLog.open(tmp_path)
    decide(log, "s1", "accept")
    path = tmp_path / "review.jsonl"
    with path.open("a") as handle:  # a crash mid-write: half a line, no newline
        handle.write('{"id": "x", "reviewer": "ana", "sample_id": "s2", "deci')
    with caplog.at_level(logging.WARNING):
        decisions, warnings = read_decisions(path)
    assert [d["sample_id"] for d in decisions] == ["s1"]
    assert warnings == [f"{path}:2: skipped a torn line (cut off mid-write; 55 characters)"]
    assert warnings[0] in caplog.text
    # The server restarted on it: it resumes, and the next decision lands on a line of its own.
    restarted = ReviewLog.open(tmp_path)
    decide(restarted, "s3", "reject", reason="garbled or unnatural")
    assert sorted(ReviewLog.open(tmp_path).mine("ana")) == ["s1", "s3"]


def test_a_whole_line_that_is_not_a_decision_is_bad_input_naming_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "review.jsonl"
    path.write_text(json.dumps({"id": "a", "reviewer": "ana", "time": "t", "sample_id": "s1",
                                "decision": "accept"}) + "\n"
                    + json.dumps({"id": "b", "reviewer": "ana", "time": "t", "sample_id": "s1",
                                  "decision": "maybe"}) + "\n")
    with pytest.raises(UserInputError, match=r"review\.jsonl:2: decision: "):
        ReviewLog.open(tmp_path)
