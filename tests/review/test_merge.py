"""`caredio review merge`: Cohen's kappa against a case computed by hand, disagreements listed,
the merged file holding both logs. Real files, the real entry point in process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from caredio.review.merge import cohen_kappa
from testing.cli import in_process_cli

# Ten samples both reviewed. A keeps 7 and rejects 3; B keeps 6 and rejects 4. They agree on
# s0-s4 (keep) and s8, s9 (reject); A keeps and B rejects s5, s6; A rejects and B keeps s7.
A = ["keep"] * 7 + ["reject"] * 3
B = ["keep"] * 5 + ["reject", "reject", "keep", "reject", "reject"]
# By hand: p_o = 7/10 = 0.70; p_e = 0.7 * 0.6 + 0.3 * 0.4 = 0.54;
# kappa = (0.70 - 0.54) / (1 - 0.54) = 0.16 / 0.46 = 0.347826...
KAPPA = 0.16 / 0.46


def write(path: Path, reviewer: str, categories: list[str], extra: list[dict[str, Any]] = ()) -> Path:
    lines = []
    for i, category in enumerate(categories):
        decision = "accept" if category == "keep" else "reject"
        lines.append({"id": f"{reviewer}{i}", "reviewer": reviewer, "time": f"2025-01-01T00:00:{i:02d}.000Z",
                      "sample_id": f"s{i}", "decision": decision,
                      "reason": "factually wrong" if decision == "reject" else None,
                      "before": {"question": "q", "response": "r"}, "after": {"question": "q", "response": "r"}})
    path.write_text("".join(json.dumps(line) + "\n" for line in [*lines, *extra]))
    return path


def test_kappa_matches_the_hand_computed_case() -> None:
    assert cohen_kappa(list(zip(A, B, strict=True))) == pytest.approx(KAPPA)
    assert cohen_kappa([("keep", "keep"), ("reject", "reject")]) == pytest.approx(1.0)
    assert cohen_kappa([("keep", "keep")] * 3) is None  # one category only: undefined
    assert cohen_kappa([]) is None


def test_merge_lists_disagreements_and_kappa_and_writes_both_logs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # B also edited s0 to another text (both kept it) and reviewed s10, which A did not.
    edit = {"id": "bedit", "reviewer": "bea", "time": "2025-01-01T00:01:00.000Z", "sample_id": "s0",
            "decision": "edit", "before": {"question": "q", "response": "r"},
            "after": {"question": "q", "response": "better r"}}
    only_b = {"id": "b10", "reviewer": "bea", "time": "2025-01-01T00:02:00.000Z", "sample_id": "s10",
              "decision": "accept"}
    file_a = write(tmp_path / "a.jsonl", "ann", A)
    file_b = write(tmp_path / "b.jsonl", "bea", B, [edit, only_b])
    run = tmp_path / "run"
    run.mkdir()
    code, out, err = in_process_cli(monkeypatch, capsys)("review", "merge", str(file_a), str(file_b),
                                                         "--out", str(run))
    assert code == 0, err
    assert f"agreement on keep/reject: 0.700; Cohen's kappa: {KAPPA:.3f}" in out
    assert "10 samples reviewed by both" in out
    disagreeing = [line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("disagree")]
    assert disagreeing == ["s5", "s6", "s7"]
    assert "disagree s7: ann reject (factually wrong) / bea accept" in out
    assert "both kept s0, with different text" in out
    merged = [json.loads(line) for line in (run / "review.jsonl").read_text().splitlines()]
    assert len(merged) == 10 + 12 and len({d["id"] for d in merged}) == 22
    assert [d["time"] for d in merged] == sorted(d["time"] for d in merged)


def test_merge_refuses_one_reviewer_twice_and_a_missing_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cli = in_process_cli(monkeypatch, capsys)
    file_a = write(tmp_path / "a.jsonl", "ann", A)
    code, _, err = cli("review", "merge", str(file_a), str(write(tmp_path / "b.jsonl", "ann", B)))
    assert code == 2 and "the same reviewer (ann)" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("review", "merge", str(file_a), str(tmp_path / "nope.jsonl"),
                         "--out", str(tmp_path / "m.jsonl"))
    assert code == 2 and "nope.jsonl: no such review file" in err
    assert not (tmp_path / "m.jsonl").exists()
