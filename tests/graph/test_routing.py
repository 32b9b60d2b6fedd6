"""The convergence router and best-version choice (pure logic, no model)."""

from __future__ import annotations

from caredio.config.settings import LoopSettings
from caredio.graph.routing import (
    FINALIZE,
    REFINE_QUESTION,
    REFINE_RESPONSE,
    base_version,
    best_version,
    decide,
    rejected,
)


def version(round_: int, r: float, d: float, j: float | None = None) -> dict:
    return {"sample_id": "s", "round": round_, "step": "initial" if round_ == 0 else "response",
            "question": f"q{round_}", "response": f"r{round_}", "representativeness": r,
            "distinctiveness": d, "objective": (r + d) / 2 if j is None else j,
            "attribution": {}, "critique": ""}


def test_min_rounds_forces_a_refinement_even_when_thresholds_are_met() -> None:
    loop = LoopSettings(min_rounds=1, max_rounds=3, r_threshold=0.5, d_threshold=0.5)
    assert decide([version(0, 0.9, 0.9)], loop) == (REFINE_RESPONSE, "continue")


def test_thresholds_stop() -> None:
    loop = LoopSettings(min_rounds=1, max_rounds=5, r_threshold=0.6, d_threshold=0.7)
    history = [version(0, 0.1, 0.1), version(1, 0.6, 0.7)]
    assert decide(history, loop) == (FINALIZE, "thresholds")
    # One threshold alone is not enough.
    assert decide([version(0, 0.1, 0.1), version(1, 0.9, 0.69)], loop)[0] != FINALIZE


def test_max_rounds_stop() -> None:
    loop = LoopSettings(min_rounds=0, max_rounds=2, patience=5)
    history = [version(0, 0.1, 0.1), version(1, 0.2, 0.2), version(2, 0.3, 0.3)]
    assert decide(history, loop) == (FINALIZE, "max_rounds")


def test_plateau_stop_after_patience_rounds_without_epsilon_gain() -> None:
    loop = LoopSettings(min_rounds=1, max_rounds=10, patience=2, epsilon=0.01)
    flat = [version(0, 0.5, 0.5), version(1, 0.5, 0.505), version(2, 0.5, 0.51)]
    assert decide(flat, loop) == (FINALIZE, "plateau")
    rising = [version(0, 0.5, 0.5), version(1, 0.5, 0.52), version(2, 0.5, 0.56)]
    assert decide(rising, loop)[1] == "continue"


def test_steps_alternate_response_then_question() -> None:
    loop = LoopSettings(min_rounds=0, max_rounds=10, patience=9)
    assert decide([version(0, 0.1, 0.1)], loop)[0] == REFINE_RESPONSE
    assert decide([version(0, 0.1, 0.1), version(1, 0.2, 0.2)], loop)[0] == REFINE_QUESTION
    three = [version(0, 0.1, 0.1), version(1, 0.2, 0.2), version(2, 0.3, 0.3)]
    assert decide(three, loop)[0] == REFINE_RESPONSE


def test_best_version_is_the_highest_objective_not_the_last() -> None:
    history = [version(0, 0.2, 0.2), version(1, 0.8, 0.8), version(2, 0.4, 0.4)]
    assert best_version(history)["round"] == 1


def test_best_version_tie_goes_to_the_earlier() -> None:
    history = [version(0, 0.5, 0.5), version(1, 0.5, 0.5)]
    assert best_version(history)["round"] == 0


# -- the loop's own choices (loop.refine_from, loop.max_r_drop, loop.first_step) ------------------


def test_question_first_starts_with_a_question_step_then_alternates() -> None:
    loop = LoopSettings(min_rounds=0, max_rounds=10, patience=9, first_step="question")
    assert decide([version(0, 0.1, 0.1)], loop)[0] == REFINE_QUESTION
    assert decide([version(0, 0.1, 0.1), version(1, 0.2, 0.2)], loop)[0] == REFINE_RESPONSE


def test_refinement_starts_from_the_latest_kept_or_the_best_version() -> None:
    history = [version(0, 0.5, 0.5), version(1, 0.9, 0.9), version(2, 0.3, 0.3)]
    assert base_version(history, LoopSettings())["round"] == 2
    assert base_version(history, LoopSettings(refine_from="best"))["round"] == 1
    history[2]["rejected"] = True
    assert base_version(history, LoopSettings())["round"] == 1


def test_a_refinement_losing_more_r_than_the_margin_is_rejected_and_never_kept() -> None:
    loop = LoopSettings(max_r_drop=0.1)
    base = version(0, 0.6, 0.2)
    assert rejected(0.49, base, loop) and not rejected(0.5, base, loop)
    assert not rejected(0.0, base, LoopSettings())  # no margin set: nothing is rejected
    # Rejected, although its J is the highest: D rose while R fell.
    history = [base, {**version(1, 0.3, 0.95), "rejected": True}]
    assert best_version(history)["round"] == 0
    # A rejected version neither meets the thresholds nor counts as progress.
    loop = LoopSettings(min_rounds=1, max_rounds=5, patience=1, r_threshold=0.2, d_threshold=0.2)
    assert decide(history, loop) == (FINALIZE, "plateau")
    assert decide([base, version(1, 0.3, 0.95)], loop) == (FINALIZE, "thresholds")
