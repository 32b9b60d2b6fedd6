"""Knowledge written "question? answer" in a plain JSONL or CSV file (issue 26): ingest reads it
as "question — answer", the context-and-claim form the BLEnD importer writes, so the scorer
matches the answer on its own. Measured at scale by benchmarks/qa_knowledge.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from caredio.memory.blend import read_blend_questions
from caredio.memory.ingest import question_answer
from caredio.memory.items import claim_of
from caredio.memory.store import CulturalMemory
from testing.blend import blend_subset
from testing.cli import in_process_cli
from testing.jobs import HashEmbedder


@pytest.mark.parametrize(("text", "claim"), [
    ("What is the most popular fruit in your country? mango", "mango"),
    ("At what age do kids start preschool? (Provide Arabic numerals (e.g., 12) only.) 4", "4"),
    ("In your country, at which grade level do students take their first exam? grade 6", "grade 6"),
    ("When is the weekend (e.g. Monday, Tuesday)? saturday / sunday", "saturday / sunday"),
    ("Is tipping expected? No, service is included in the bill.", "No, service is included in the bill."),
    ("How do people greet? - They bow.", "They bow."),
    ("What do people drink (at breakfast)? tea (with milk)", "tea (with milk)"),
])
def test_a_question_and_its_answer_become_context_and_claim(text: str, claim: str) -> None:
    split = question_answer(text)
    assert split is not None and claim_of(split) == claim
    assert split.startswith(text.split("?")[0] + "?")


@pytest.mark.parametrize("text", [
    "Shoes come off at the door.",
    "How do people greet?",  # no answer
    "'How are you?' is a routine greeting that expects a brief reply.",  # a quoted question
    "Asking 'Have you eaten?' is a casual greeting.",
    "Tea matters. Why? Because it is served first.",  # a sentence before the question
    "Ever wondered why tea matters? It is served first.",  # does not open like a question
    "What is a popular kids' show? why / why? series",  # a second '?': which one ends the question?
    "Do people bow?They do.",
    "What do people eat at weddings? — injera",  # already context — claim
])
def test_anything_else_is_left_as_written(text: str) -> None:
    assert question_answer(text) is None


@pytest.fixture
def fake_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """The real CLI with the FAKE HashEmbedder as the shared MiniLM: these tests are about what
    ingest stores (our logic), not about similarities."""
    import caredio.memory.embeddings as embeddings

    monkeypatch.setitem(embeddings._shared, embeddings.shared_key("minilm"), HashEmbedder())
    return in_process_cli(monkeypatch, capsys)


def test_ingest_stores_the_answer_as_the_claim_and_says_so(fake_cli: Any, tmp_path: Path) -> None:
    lines = [{"culture": "Ethiopia", "text": "What do people eat at weddings in your country? injera"},
             {"culture": "Mexico", "text": "What do people eat at weddings in your country? mole",
              "weight": 0.6},
             {"culture": "Mexico", "text": "Asking 'Have you eaten?' is a casual greeting."},
             {"culture": "Mexico", "text": "Shoes stay on indoors."}]
    path = tmp_path / "knowledge.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    memory = tmp_path / "memory"
    code, out, err = fake_cli("memory", "ingest", str(path), "--memory", str(memory))
    assert code == 0, err
    assert "4 items read, 4 new" in out and "2 as 'question — answer'" in out, out
    assert "note:" in err and "1 item(s) hold a '?'" in err, err  # the quoted question, kept whole
    csv_path = tmp_path / "knowledge.csv"
    csv_path.write_text("culture,text\nIran,What is eaten at breakfast in your country? bread and cheese\n",
                        encoding="utf-8")
    code, out, err = fake_cli("memory", "ingest", str(csv_path), "--memory", str(memory))
    assert code == 0 and "1 as 'question — answer'" in out, out + err

    store = CulturalMemory.open(HashEmbedder(), path=memory)
    stored = {culture: matrix.texts for culture, matrix in store.matrices().items()}
    claims = store.claims.get(include=["documents"])["documents"]
    store.close()
    assert "What do people eat at weddings in your country? — injera" in stored["Ethiopia"]
    assert "What is eaten at breakfast in your country? — bread and cheese" in stored["Iran"]
    assert set(claims) == {"injera", "mole", "bread and cheese"}
    # Ids are those of the text as written: ingesting the file again adds nothing.
    code, out, err = fake_cli("memory", "ingest", str(path), "--memory", str(memory))
    assert code == 0 and "4 items read, 0 new, 4 already present" in out, out + err


COUNTRIES = ("Iran", "Ethiopia", "Mexico", "Spain")


def _mean_attribution(cli: Any, memory: Path, samples: Path) -> tuple[float, float]:
    """Mean probability of the right culture and top-1 over the samples, scored by the CLI."""
    code, out, err = cli("score", str(samples), "--memory", str(memory), "--contrast", "all", "--json")
    assert code == 0, err
    scores = [json.loads(line) for line in out.splitlines() if line.strip()]
    right = [score["attribution"][score["culture"]] for score in scores]
    hits = [score["predicted_culture"] == score["culture"] for score in scores]
    return sum(right) / len(right), sum(hits) / len(hits)


def test_question_answer_knowledge_attributes_as_well_as_the_importers(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], embedder: Any,
        tmp_path: Path) -> None:
    """Real MiniLM, real BLEnD questions. Each country's annotated answers to 20 questions, as
    "question? answer" lines of a JSONL file, against the same files through --format blend;
    each country's answers to those questions are then attributed among all cultures in memory.
    Before ingest split such text the answer was matched only as part of its question: among
    the 9 cultures in memory (these 4 and the starter pack's 5) the right one's mean probability
    was 0.25 against the importer's 0.52, top-1 0.76 against 0.87; now both are the same."""
    cli = in_process_cli(monkeypatch, capsys)
    folder = tmp_path / "blend"
    folder.mkdir()
    files = [blend_subset(folder, country, 20) for country in COUNTRIES]
    knowledge, samples = [], []
    for path in files:
        for question in read_blend_questions(path):
            knowledge += [{"culture": question.culture, "text": f"{question.question} {answer.text}",
                           "weight": min(1.0, answer.count / question.annotators)}
                          for answer in question.answers]
            if question.answers:
                samples.append({"culture": question.culture, "question": question.question,
                                "response": ", ".join(a.text for a in question.answers) + "."})
    qa_file, samples_file = tmp_path / "qa.jsonl", tmp_path / "samples.jsonl"
    qa_file.write_text("".join(json.dumps(line) + "\n" for line in knowledge), encoding="utf-8")
    samples_file.write_text("".join(json.dumps(line) + "\n" for line in samples), encoding="utf-8")
    as_jsonl, as_blend = tmp_path / "as_jsonl", tmp_path / "as_blend"
    code, _, err = cli("memory", "ingest", str(qa_file), "--memory", str(as_jsonl))
    assert code == 0, err
    code, _, err = cli("memory", "ingest", *map(str, files), "--format", "blend", "--memory", str(as_blend))
    assert code == 0, err

    jsonl_p, jsonl_top1 = _mean_attribution(cli, as_jsonl, samples_file)
    blend_p, blend_top1 = _mean_attribution(cli, as_blend, samples_file)
    assert jsonl_p >= blend_p - 0.02, (jsonl_p, blend_p)
    assert jsonl_top1 >= blend_top1 - 0.03, (jsonl_top1, blend_top1)
