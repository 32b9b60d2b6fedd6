"""The report's evidence section: each kept answer with every sentence marked by its label,
and on hover the share of R and D it carried and the items behind it. Every text is escaped
(model output is data, not markup)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from caredio.memory.contents import item_texts
from caredio.rundir.formats import LABEL_TEXT
from caredio.rundir.reader import RunData

COLOURS = {"supported": "#d9f2d9", "shared": "#fff2b3", "unsupported": "#f5d0f0", "off_topic": "#eeeeee",
           "repeated": "#eeeeee", "copied": "#f8c6c6"}
STYLE = "".join(f".ev-{label}{{background:{colour};border-radius:3px;padding:0 2px}}"
                for label, colour in COLOURS.items())


def evidence_section(run: RunData) -> str:
    """HTML for the dataset's answers (the selected ones when a selection exists), or "" when
    the run recorded no evidence (made before it existed, or with scoring.explain off)."""
    lines = run.selected or run.dataset
    kept = [line for line in lines if line["metadata"].get("evidence")]
    if not kept:
        return ""
    ids = [str(item[0]) for line in kept for entry in line["metadata"].get("evidence", [])
           for item in entry.get("support", [])]
    ids += [str(entry["rival"][1]) for line in kept for entry in line["metadata"].get("evidence", [])
            if entry.get("rival")]
    texts = item_texts(run.config.get("memory"), ids)
    legend = " ".join(f"<span class='ev-{label}'>{html.escape(text)}</span>" for label, text in LABEL_TEXT.items())
    blocks = []
    for line in kept:
        meta = line["metadata"]
        answer = str(line["messages"][-1]["content"])
        marked = " ".join(_segment(entry, answer, texts) for entry in meta.get("evidence", []))
        scores = (f"R {float(meta.get('representativeness', 0)):.3f} "
                  f"D {float(meta.get('distinctiveness', 0)):.3f}")
        blocks.append(f"<h3><code>{html.escape(str(meta['sample_id']))}</code> · "
                      f"{html.escape(str(meta['culture']))} · {scores}</h3>"
                      f"<p class=q>{html.escape(str(line['messages'][-2]['content']))}</p><p>{marked}</p>")
    return (f"<h2>Evidence: why each sentence scored as it did</h2><style>{STYLE}</style>"
            f"<p style='font-size:.85rem'>{legend} — hover a sentence for the items behind it.</p>"
            + "".join(blocks))


def _segment(entry: Mapping[str, Any], answer: str, texts: Mapping[str, tuple[str, str]]) -> str:
    span = entry.get("span")
    text = answer[span[0]:span[1]] if span else str(entry.get("text", ""))
    label = str(entry.get("label", ""))
    hover = [f"{LABEL_TEXT.get(label, label)} · R {100 * float(entry.get('r_share', 0)):.0f}% · "
             f"D {100 * float(entry.get('d_share', 0)):.0f}%"]
    for item_id, similarity in entry.get("support", [])[:1]:
        hover.append(f"supported by ({min(float(similarity), 1.0):.2f}): {texts.get(str(item_id), ('', item_id))[1]}")
    rival = entry.get("rival")
    if rival:
        said = ("its contrast answer" if rival[1] == "contrast answer"
                else texts.get(str(rival[1]), ("", rival[1]))[1])
        hover.append(f"{rival[0]} ({min(float(rival[2]), 1.0):.2f}): {said}")
    return (f"<span class='ev-{html.escape(label)}' title='{html.escape(chr(10).join(hover), quote=True)}'>"
            f"{html.escape(text)}</span>")
