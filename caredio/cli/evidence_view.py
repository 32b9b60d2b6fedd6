"""Per-segment evidence in the terminal: each sentence of an answer with its label, the share
of R and D it carried, and the items behind it (``caredio trace --sample``, ``caredio score
--explain``). The evidence stores item ids; their texts are looked up once per display."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.text import Text

from caredio.rundir.formats import LABEL_TEXT

STYLE = {"supported": "green", "shared": "yellow", "unsupported": "magenta", "off_topic": "dim",
         "repeated": "dim", "copied": "red"}


def evidence_ids(evidence: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every item id an evidence list names (supporting and rival items)."""
    evidence = list(evidence)  # read twice below: a generator would be spent by the first
    ids = [str(item[0]) for entry in evidence for item in entry.get("support", [])]
    ids += [str(entry["rival"][1]) for entry in evidence if entry.get("rival")]
    return [i for i in dict.fromkeys(ids) if i != "contrast answer"]


def segment_text(entry: Mapping[str, Any], response: str) -> str:
    span = entry.get("span")
    return response[span[0]:span[1]] if span else str(entry.get("text", ""))


def evidence_lines(evidence: Sequence[Mapping[str, Any]], response: str,
                   texts: Mapping[str, tuple[str, str]], width: int = 90) -> list[Text]:
    """One block per segment: ``[label] sentence  R 40% D 25%`` and what supports or shares it."""
    lines = []
    for entry in evidence:
        label = str(entry.get("label", "?"))
        line = Text(f"[{label}] ", style=STYLE.get(label, ""))
        line.append(segment_text(entry, response))
        shares = f"  R {100 * float(entry.get('r_share', 0)):.0f}% · D {100 * float(entry.get('d_share', 0)):.0f}%"
        line.append(shares, style="bold" if entry.get("r_share") or entry.get("d_share") else "dim")
        lines.append(line)
        if label in ("repeated",):
            continue
        for item_id, similarity in entry.get("support", [])[:1]:
            lines.append(Text(f"    supported by ({_sim(similarity)}) {_shown(item_id, texts, width)}", style="dim"))
        rival = entry.get("rival")
        if rival and (label == "shared" or float(rival[2]) >= 0.5):
            lines.append(Text(f"    {rival[0]} states it ({_sim(rival[2])}): "
                              f"{_shown(str(rival[1]), texts, width)}", style="dim"))
    return lines


def legend() -> Text:
    return Text("  ".join(f"[{label}] {text}" for label, text in LABEL_TEXT.items()), style="dim")


def _sim(similarity: Any) -> str:
    """On the similarity scale 1 is a paraphrase; a closer match than the calibration's
    paraphrase reads past 1, which says no more than 1 does."""
    return f"{min(float(similarity), 1.0):.2f}"


def _shown(item_id: str, texts: Mapping[str, tuple[str, str]], width: int) -> str:
    if item_id == "contrast answer":
        return "its contrast answer to the same question"
    text = texts.get(item_id, ("", f"item {item_id}"))[1]
    return text if len(text) <= width else text[: width - 1] + "…"
