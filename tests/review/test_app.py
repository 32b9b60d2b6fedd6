"""The review app as a served process: `caredio review RUN_DIR` (its own process, FAKE embedder)
on a real uvicorn server on loopback, asked over real HTTP. Token, headers, binding; the
session's re-scoring against the run's own scorer; resuming; a run without evidence."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from caredio.review.session import NO_EVIDENCE, ReviewSession, word_diff
from testing.review import decisions, start_review

WRITE = {"X-Requested-With": "caredio-review"}


@pytest.fixture
def served(stub_run: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    proc, url = start_review(stub_run, "--reviewer", "ana")
    try:
        yield proc, url, stub_run
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def listening_address(port: int) -> str:
    """The local address a TCP socket listens on for ``port`` (Linux /proc/net/tcp)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":  # LISTEN
                return address
    raise AssertionError(f"nothing listens on {port}")


def test_every_request_without_the_token_gets_403(served: tuple[Any, str, Path]) -> None:
    proc, url, run = served
    parts = urlsplit(url)
    base, token = f"{parts.scheme}://{parts.netloc}", parts.query.removeprefix("token=")
    assert parts.hostname == "127.0.0.1" and listening_address(parts.port or 0) == "0100007F"
    sample = json.loads((run / "dataset.jsonl").read_text().splitlines()[0])["metadata"]["sample_id"]
    gets = ["/", "/api/samples", f"/api/samples/{sample}", "/static/review.js", "/static/review.css",
            "/nothing"]
    with httpx.Client(base_url=base) as anonymous:
        for path in gets:
            assert anonymous.get(path).status_code == 403, path
            assert anonymous.get(path, params={"token": "wrong" + token}).status_code == 403, path
            assert anonymous.get(path, headers={"X-Review-Token": token[:-1]}).status_code == 403, path
        anonymous.cookies.set("caredio_review", "guess")
        for path in (f"/api/samples/{sample}/decision", "/api/undo"):
            assert anonymous.post(path, json={"decision": "accept"}, headers=WRITE).status_code == 403
    assert decisions(run) == []
    with httpx.Client(base_url=base) as browser:
        page = browser.get("/", params={"token": token})  # the printed URL sets the cookie
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        for path in gets[1:5]:
            assert browser.get(path).status_code == 200, path  # with the cookie alone
        # A change without the page's header (a form posted from another site) is refused.
        assert browser.post(f"/api/samples/{sample}/decision", json={"decision": "accept"}).status_code == 403
        done = browser.post(f"/api/samples/{sample}/decision", json={"decision": "accept"}, headers=WRITE)
        assert done.status_code == 200 and done.json()["progress"] == {"reviewed": 1, "total": 4}
        assert browser.post("/api/samples/nope/decision", json={"decision": "accept"},
                            headers=WRITE).status_code == 404
        assert browser.post(f"/api/samples/{sample}/decision", json={"decision": "reject"},
                            headers=WRITE).json() == {"error": "reject: give a reason (pick one or type one)"}
    assert [d["decision"] for d in decisions(run)] == ["accept"]
    proc.terminate()
    rest, err = proc.communicate(timeout=20)  # stdout after its first line (the URL), and stderr
    # The token is on stdout's first line only: not in a log (uvicorn's access log writes to
    # stdout), not on stderr, not in any file of the run.
    assert token not in rest and token not in err
    assert not [p for p in run.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]


def test_another_host_is_an_explicit_choice_and_still_needs_the_token(stub_run: Path) -> None:
    proc, url = start_review(stub_run, "--host", "0.0.0.0")  # no --reviewer: $USER (tester)
    try:
        parts = urlsplit(url)
        assert parts.hostname == "0.0.0.0"
        base = f"http://127.0.0.1:{parts.port}"
        assert httpx.get(f"{base}/api/samples").status_code == 403
        listing = httpx.get(f"{base}/api/samples", params={"token": parts.query[6:]})
        assert listing.status_code == 200 and listing.json()["reviewer"] == "tester"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "warning: listening on 0.0.0.0: other machines can reach this app" in err


def test_an_edit_is_rescored_by_the_runs_own_scorer(stub_run: Path, shared_fake_embedder: Any) -> None:
    """The edit's scores and evidence are those the run's scorer gives the same inputs (the
    items shown to the agents left out, the contrast answers kept: the question is unchanged)."""
    from caredio.config.settings import Settings
    from caredio.memory.store import CulturalMemory
    from caredio.run.job import load_starter_pack, loop_parts
    from caredio.rundir.reader import open_run

    session = ReviewSession(stub_run, "ana")
    entry = session.entries[0]
    detail = session.detail(entry.sample_id)
    answer = "Rice with miso soup is eaten at breakfast. People bow when they greet."
    after = session.edit(entry.sample_id, detail["question"], answer)["detail"]
    [line] = decisions(stub_run)
    run = open_run(stub_run)
    settings = Settings(**run.config)
    memory = CulturalMemory.open(shared_fake_embedder)
    load_starter_pack(settings, memory)
    _, scorer, _ = loop_parts(settings, memory)
    best = session._best_version(entry, session.versions[entry.sample_id])
    expected = scorer.score(detail["question"], answer, detail["culture"], detail["contrast"],
                            best["contrast_answers"], best["grounding_ids"])
    assert line["decision"] == "edit" and line["reviewer"] == "ana"
    assert line["before"]["response"] == detail["response"] and line["after"]["response"] == answer
    assert line["scores_before"] == detail["scores"]
    assert line["scores_after"] == {"representativeness": round(expected.representativeness, 4),
                                    "distinctiveness": round(expected.distinctiveness, 4),
                                    "objective": round(expected.objective, 4)}
    assert line["evidence_after"] == getattr(expected, "evidence", [])
    assert after["scores"] == line["scores_after"] and after["edited"]
    assert after["versions"][-1]["edit"] and any(op == "ins" for op, _ in after["versions"][-1]["response"])


def test_a_restart_resumes_at_the_first_sample_not_decided(stub_run: Path) -> None:
    first = ReviewSession(stub_run, "ana")
    order = [entry.sample_id for entry in first.entries]
    first.decide(order[0], "accept")
    first.decide(order[1], "reject", "does not answer the question")
    again = ReviewSession(stub_run, "ana").listing()
    assert again["start"] == order[2] and again["progress"] == {"reviewed": 2, "total": 4}
    assert ReviewSession(stub_run, "ben").listing()["start"] == order[0]  # per reviewer


def test_selected_samples_are_listed_first(stub_run: Path) -> None:
    lines = (stub_run / "dataset.jsonl").read_text().splitlines()
    (stub_run / "selected.jsonl").write_text(lines[-1] + "\n")
    last = json.loads(lines[-1])["metadata"]["sample_id"]
    listing = ReviewSession(stub_run, "ana").listing()
    assert listing["samples"][0]["sample_id"] == last and listing["samples"][0]["selected"]
    assert [s["selected"] for s in listing["samples"][1:]] == [False] * 3


def test_a_run_made_before_evidence_shows_the_answer_unmarked(stub_run: Path) -> None:
    path = stub_run / "dataset.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        line["metadata"].pop("evidence", None)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    session = ReviewSession(stub_run, "ana")
    detail = session.detail(session.entries[0].sample_id)
    assert detail["evidence"] == {"recorded": False, "note": NO_EVIDENCE, "segments": [], "unplaced": [],
                                  "pieces": [{"text": detail["response"], "seg": None}]}
    assert detail["labels"] == []


def test_evidence_marks_each_sentence_and_resolves_its_items(stub_run: Path) -> None:
    session = ReviewSession(stub_run, "ana")
    for entry in session.entries:
        detail = session.detail(entry.sample_id)
        evidence = detail["evidence"]
        assert evidence["recorded"] and evidence["segments"]
        assert "".join(p["text"] for p in evidence["pieces"]) == detail["response"]
        marked = [p["seg"] for p in evidence["pieces"] if p["seg"] is not None]
        assert sorted(marked + evidence["unplaced"]) == list(range(len(evidence["segments"])))
        for segment in evidence["segments"]:
            assert segment["support"] and all(item["text"] for item in segment["support"])


def test_versions_are_diffed_word_by_word() -> None:
    assert word_diff("Rice is eaten daily.", "Rice and soup are eaten daily.") == [
        ["eq", "Rice "], ["del", "is"], ["ins", "and soup are"], ["eq", " eaten daily."]]
    assert word_diff("same", "same") == [["eq", "same"]]


def test_an_edit_holds_the_memory_directory_only_while_it_is_scored(
        stub_run: Path, shared_fake_embedder: Any, tmp_path: Path) -> None:
    """A reviewer keeps the app open for days: a run on the same memory must not be locked out."""
    import fcntl

    from caredio.config.settings import Settings
    from caredio.memory.dirlock import LOCK_FILE
    from caredio.memory.store import CulturalMemory
    from caredio.run.job import load_starter_pack

    memory = tmp_path / "memory"
    store = CulturalMemory.open(shared_fake_embedder, path=memory)
    load_starter_pack(Settings(), store)
    store.close()
    config = json.loads((stub_run / "config.json").read_text())
    config["memory"]["path"] = str(memory)
    (stub_run / "config.json").write_text(json.dumps(config))
    session = ReviewSession(stub_run, "ana")
    sample = session.entries[0].sample_id
    after = session.edit(sample, session.detail(sample)["question"], "Rice is eaten at home. Tea is drunk.")
    assert after["detail"]["scores"] and not after["detail"]["rescore_note"]
    with (memory / LOCK_FILE).open("a") as handle:  # another open file: flock sees any holder
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if still held
        fcntl.flock(handle, fcntl.LOCK_UN)
