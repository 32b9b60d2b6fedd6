"""Small run directories for the review app's tests and benchmark: the real graph against the
FAKE stub server (testing/stub_server.py) with the FAKE hash embedder (testing/jobs.py).

The stub's structured replies are replaced by the hand-written answers below so that a page
shows sentences a reviewer could judge, with evidence that differs between them. They are
FAKE: written for these tests, never model output, never data. One answer carries markup
(``INJECTION``), as a model's output may: the app must show it as text.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from testing.jobs import CLI_WITH_FAKE_EMBEDDER, HashEmbedder, fake_cli_env, stub_settings

INJECTION = "<script>document.title='pwned'</script><b>bold?</b>"
QUESTIONS = {
    "food": "What does a typical home meal look like, and what is drunk with it?",
    "greet": "How do people greet someone they meet for the first time?",
}
ANSWERS = {
    ("Japan", "food"): [
        "A typical home meal is rice with miso soup, pickles and a few small side dishes.",
        "Raw fish is often eaten as sashimi with soy sauce and wasabi.",
        "Green tea is drunk with most meals.",
        "Breakfast cereal with milk is the most common breakfast everywhere.",
    ],
    ("Japan", "greet"): [
        "People bow when they greet, and the depth of the bow shows respect.",
        "Business cards are offered with both hands and studied before being put away.",
        "Hugging a new acquaintance is the usual greeting.",
    ],
    ("China", "food"): [
        "Dishes are shared from the middle of the table, each person with a bowl of rice.",
        f"Hot water or tea is served with most meals. {INJECTION}",
        "Long noodles are eaten on birthdays for a long life.",
    ],
    ("China", "greet"): [
        "People often greet by asking whether you have eaten yet.",
        "Elders are greeted first as a sign of respect.",
        "A handshake is the usual greeting in business.",
    ],
}
REFINED_TAIL = "Guests are served before the hosts."
CONTRAST = {
    ("Japan", "food"): "Rice and miso soup come with most home meals. Green tea is the usual drink.",
    ("Japan", "greet"): "People bow, more deeply to someone senior. Business cards are exchanged with both hands.",
    ("China", "food"): "Several shared dishes are served with rice. Tea or hot water is drunk with the meal.",
    ("China", "greet"): "A handshake and a nod are usual. The eldest is greeted first.",
    ("South Korea", "food"): "Rice, soup and side dishes such as kimchi are served together. Barley tea is drunk.",
    ("South Korea", "greet"): "People bow slightly and often shake hands. Age decides who bows first.",
}


def _topic(text: str) -> str:
    for topic, question in QUESTIONS.items():  # an answer's prompt holds its question
        if question in text:
            return topic
    return "greet" if "Greetings and Etiquette" in text else "food"  # a question's: its topic


def _culture(text: str) -> str:
    # The target's answer prompt names it first; a contrast prompt names the related culture.
    found = [(text.find(c), c) for c in ("Japan", "China", "South Korea") if c in text]
    return min(found)[1] if found else "Japan"


def structured(body: dict[str, Any], name: str, value: Any) -> Any:
    """The stub's ``structured`` hook: hand-written questions and answers (see above)."""
    text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
    topic, culture = _topic(text), _culture(text)
    if name in ("ExpertQuestion", "RefinedQuestion"):
        return {"question": QUESTIONS[topic]}
    if name == "ExpertAnswer":
        return {"answer": " ".join(ANSWERS.get((culture, topic), ANSWERS[("Japan", topic)]))}
    if name == "ContrastAnswer":
        return {"answer": CONTRAST[(culture, topic)]}
    if name == "RefinedResponse":
        sentences = ANSWERS.get((culture, topic), ANSWERS[("Japan", topic)])
        return {"response": " ".join([*sentences[:-1], REFINED_TAIL])}
    return value


def make_run(out: Path, run_id: str = "review", memory: str = ":memory:", embedder: Any = None,
             **extra: Any) -> Path:
    """A finished run: Japan and China x food and greetings, 1 round each (4 samples); scored
    with the FAKE hash embedder unless ``embedder`` is given (scripts/screenshot_review.py
    gives the real one, so the pictures in docs/ show real evidence)."""
    from caredio.run.runner import start_run
    from testing.stub_server import StubOpenAIServer

    with StubOpenAIServer(structured=structured) as stub:
        settings = stub_settings(stub.url, str(out), run_id=run_id,
                                 topics=("food_drink", "greetings_etiquette"), **extra)
        settings.memory.path = memory
        run_dir, record = start_run(settings, lambda kind, data: None, embedder=embedder or HashEmbedder())
    assert record["status"] == "completed", record
    return Path(run_dir)


def start_review(run_dir: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``caredio review RUN_DIR`` as a user starts it (a process of its own, the FAKE embedder
    installed); returns the process and the URL from its first line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI_WITH_FAKE_EMBEDDER, "review", str(run_dir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=fake_cli_env(USER="tester"))
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"caredio review printed no URL first: {url!r}\n{err[-3000:]}")
    return proc, url


def decisions(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "review.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
