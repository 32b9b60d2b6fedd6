"""One rule for a dataset line's (question, response), used by selection, memory, scoring and
export alike — so a sample has the same text, and the same embedding, wherever it is compared.
Uses the FAKE hash embedder (the rule, not the embedding model, is under test).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from caredio.cli.memory_cmd import read_samples
from caredio.conversation import line_text, question_response
from caredio.memory.selection import select_detailed
from caredio.memory.store import CulturalMemory
from caredio.tools.export import hf_rows

LINE = {
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "First question?"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "How are guests welcomed at home?"},
        {"role": "assistant", "content": "Slippers wait at the door."},
    ],
    "metadata": {"sample_id": "japan-x-000", "run_id": "r1", "culture": "Japan", "topic": "x",
                 "objective": 0.5, "representativeness": 0.4, "distinctiveness": 0.6},
}


def test_the_sample_is_the_last_exchange() -> None:
    assert question_response(LINE["messages"]) == ("How are guests welcomed at home?",
                                                   "Slippers wait at the door.")
    unanswered = [*LINE["messages"], {"role": "user", "content": "And then?"}]
    assert question_response(unanswered) == ("How are guests welcomed at home?",
                                             "Slippers wait at the door.")
    assert question_response([{"role": "user", "content": "Only a question?"}]) == (
        "Only a question?", "")


def test_score_reads_the_same_pair_as_export(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    path.write_text(json.dumps(LINE) + "\n")
    [sample] = read_samples(path)
    [row] = hf_rows([LINE])
    assert (sample["question"], sample["response"]) == (row["question"], row["response"])


def test_a_line_accepted_into_memory_is_its_own_near_duplicate(fake_embedder: Any) -> None:
    """Selection embeds dataset lines, memory embeds accepted records: with two rules for the
    text, the same sample would not be recognised once a system message or earlier turns are
    in the line."""
    memory = CulturalMemory.open(fake_embedder)
    question, response = question_response(LINE["messages"])
    memory.samples.add([{**LINE["metadata"], "question": question, "response": response}])
    ids, vectors = memory.samples.embeddings()
    result = select_detailed([LINE], fake_embedder, budget=1, prior_ids=ids,
                             prior_vectors=vectors)
    assert result.picks == []
    [skipped] = result.skipped
    assert skipped.nearest_similarity > 0.999
    assert fake_embedder.embed([line_text(LINE)]).tolist() == vectors.tolist()
