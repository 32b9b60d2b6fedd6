"""Rendering of ``caredio trace``: agent turns, a sample's trajectory, word diffs, follow mode.

The trace is the audit trail a user reads to find out which prompt (and which template edit,
by hash) produced which data, so each turn shows what went in, what came out, what it cost and
how the scores moved. Scores live in ``trajectories.jsonl``; a turn of round ``r`` is joined
with the version of round ``r`` (what it helped make) and of round ``r - 1`` (what it started
from).
"""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from caredio.cli.evidence_view import evidence_ids, evidence_lines, legend
from caredio.errors import UserInputError
from caredio.memory.contents import item_texts
from caredio.rundir.formats import RUN_JSON, TRACE
from caredio.rundir.reader import AGENTS, RunData

HEAD_CHARS = 360
AGENT_STYLE = {"culture_expert": "cyan", "contrast_critic": "magenta", "refiner": "green"}


def check_filters(agent: str | None, round_: int | None) -> None:
    if agent is not None and agent not in AGENTS:
        raise UserInputError(f"--agent: unknown agent '{agent}' (one of {', '.join(AGENTS)})")
    if round_ is not None and round_ < 0:
        raise UserInputError(f"--round: must be 0 or more, not {round_}")


def matches(turn: Mapping[str, Any], sample: str | None, agent: str | None, round_: int | None) -> bool:
    return (
        (sample is None or turn.get("sample_id") == sample)
        and (agent is None or turn.get("agent") == agent)
        and (round_ is None or turn.get("round") == round_)
    )


def scores(version: Mapping[str, Any] | None) -> str:
    if not version:
        return "—"
    return f"R {version['representativeness']:.3f}  D {version['distinctiveness']:.3f}  J {version['objective']:.3f}"


def prompt_text(turn: Mapping[str, Any], full: bool) -> str:
    """All messages with full=True; otherwise the head of the last user message."""
    messages = turn.get("messages") or []
    if full:
        return "\n\n".join(f"[{m.get('role')}]\n{m.get('content', '')}" for m in messages)
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    text = str(last.get("content", "")) if last else ""
    if len(text) > HEAD_CHARS:
        return text[:HEAD_CHARS].rstrip() + f" … (+{len(text) - HEAD_CHARS} chars; --full shows all)"
    return text


def output_text(turn: Mapping[str, Any]) -> str:
    parsed = turn.get("parsed")
    if isinstance(parsed, dict) and len(parsed) == 1:
        return str(next(iter(parsed.values())))
    if parsed not in (None, ""):
        return json.dumps(parsed, ensure_ascii=False, indent=1) if not isinstance(parsed, str) else parsed
    return str(turn.get("output") or "")


def turn_panel(turn: Mapping[str, Any], versions: Mapping[tuple[str, int], Mapping[str, Any]], full: bool) -> Panel:
    """One agent turn: who, which template (and hash), cost, prompt, output, scores."""
    agent = str(turn.get("agent"))
    sample, round_ = str(turn.get("sample_id")), int(turn.get("round") or 0)
    header = Table.grid(padding=(0, 2))
    header.add_column(style="dim", no_wrap=True)
    header.add_column()
    header.add_row("template", f"{turn.get('template')}  #{turn.get('template_hash')}")
    header.add_row("model", f"{turn.get('model')}  ({turn.get('method') or '?'})")
    header.add_row(
        "cost",
        f"{turn.get('input_tokens')} in / {turn.get('output_tokens')} out tokens, "
        f"{turn.get('latency_ms')} ms, {turn.get('retries') or 0} retries",
    )
    reasons = turn.get("retry_reasons") or []
    if reasons:
        header.add_row("retry reasons", Text("; ".join(map(str, reasons)), style="yellow"))
    if turn.get("error"):
        header.add_row("error", Text(str(turn["error"]), style="bold red"))
    before, after = versions.get((sample, round_ - 1)), versions.get((sample, round_))
    header.add_row("scores", f"{scores(before)}  →  {scores(after)}")
    body = Group(
        header,
        Text("prompt", style="bold dim"),
        Text(prompt_text(turn, full)),
        Text("output", style="bold dim"),
        Text(output_text(turn) or "(no output)", style="bold" if output_text(turn) else "dim"),
    )
    color = AGENT_STYLE.get(agent, "white")
    title = f"[{color}]{agent}[/] · {turn.get('step')} · round {round_} · {sample}"
    return Panel(body, title=title, title_align="left", border_style=AGENT_STYLE.get(agent, "white"))


def word_diff(old: str, new: str, markers: bool = False) -> Text:
    """Words removed (red, struck through) and added (green) between two versions; with
    ``markers`` also as ``[-removed-]`` and ``{+added+}``, readable without colour (pipes, CI)."""
    a, b = old.split(), new.split()
    text = Text()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            text.append(" ".join(a[i1:i2]) + " ")
            continue
        if tag in ("delete", "replace"):
            removed = " ".join(a[i1:i2])
            text.append(f"[-{removed}-]" if markers else removed, style="red strike")
            text.append(" ")
        if tag in ("insert", "replace"):
            added = " ".join(b[j1:j2])
            text.append(f"{{+{added}+}}" if markers else added, style="green")
            text.append(" ")
    return text


def trajectory_panels(sample: str, trajectories: Sequence[Mapping[str, Any]], markers: bool = False,
                      texts: Mapping[str, tuple[str, str]] | None = None) -> Iterator[Panel]:
    """Each version of one sample with its scores, a word diff against the previous one, and
    its per-segment evidence (``texts``: item id -> (culture, text), to show the items)."""
    versions = sorted((v for v in trajectories if v.get("sample_id") == sample), key=lambda v: v["round"])
    best = max(versions, key=lambda v: v["objective"], default=None)
    previous: Mapping[str, Any] | None = None
    for version in versions:
        parts: list[Any] = [Text(scores(version), style="bold")]
        for field in ("question", "response"):
            parts.append(Text(field, style="bold dim"))
            if previous is None or previous[field] == version[field]:
                unchanged = previous is not None
                parts.append(
                    Text(
                        str(version[field]) + ("  (unchanged)" if unchanged else ""),
                        style="dim" if unchanged else "",
                    )
                )
            else:
                parts.append(word_diff(str(previous[field]), str(version[field]), markers))
        if version.get("evidence"):
            parts.append(Text("evidence", style="bold dim"))
            parts += evidence_lines(version["evidence"], str(version["response"]), texts or {})
        mark = "  ★ best" if version is best else ""
        yield Panel(
            Group(*parts),
            title=f"{sample} · round {version['round']} · {version['step']}{mark}",
            title_align="left",
            border_style="yellow" if mark else "blue",
        )
        previous = version


def render(console: Console, run: RunData, turns: Iterable[Mapping[str, Any]], full: bool, sample: str | None) -> int:
    """Print the turns (and, for one sample, its trajectory); returns how many turns."""
    versions = run.versions_by_key()
    count = 0
    for turn in turns:
        console.print(turn_panel(turn, versions, full))
        count += 1
    if sample is not None:
        console.rule(f"trajectory of {sample}")
        mine = [v for v in run.trajectories if v.get("sample_id") == sample]
        texts = item_texts(run.config.get("memory"), evidence_ids(e for v in mine for e in v.get("evidence", [])))
        for panel in trajectory_panels(sample, run.trajectories, markers=not console.is_terminal, texts=texts):
            console.print(panel)
        if any(v.get("evidence") for v in mine):
            console.print(legend())
    return count


def summary_line(run: RunData, shown: int) -> str:
    """Where the turns came from: the template set's hash names the prompt edit behind them."""
    templates = run.run.get("templates_hash") or "?"
    head = f"{shown} of {len(run.turns)} turns · run {run.run_id} ({run.status})"
    return f"{head} · template set #{templates} (snapshot in {run.dir / 'prompts'})"


def follow(
    run_dir: Path,
    emit: Callable[[dict[str, Any]], None],
    poll: float = 0.5,
    start_at: int = 0,
    max_idle_polls: int | None = None,
) -> None:
    """Tail trace.jsonl from byte ``start_at``: emit each complete new line until the run is
    no longer running (after one last read) or the user presses Ctrl-C."""
    offset, idle = start_at, 0
    path = run_dir / TRACE
    while True:
        status = _status(run_dir)
        offset, fresh = _read_new(path, offset, emit)
        idle = 0 if fresh else idle + 1
        if status != "running":
            offset, _ = _read_new(path, offset, emit)
            return
        if max_idle_polls is not None and idle >= max_idle_polls:
            return
        time.sleep(poll)


def _status(run_dir: Path) -> str:
    try:
        return str(json.loads((run_dir / RUN_JSON).read_text(encoding="utf-8")).get("status"))
    except (OSError, json.JSONDecodeError):
        return "running"  # not written yet, or replaced under us: look again next time


def _read_new(path: Path, offset: int, emit: Callable[[dict[str, Any]], None]) -> tuple[int, int]:
    """Emit complete lines after ``offset``; a line still being written waits for its newline."""
    if not path.exists():
        return offset, 0
    with path.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read()
    end = chunk.rfind(b"\n")
    if end < 0:
        return offset, 0
    fresh = 0
    for raw in chunk[: end + 1].splitlines():
        if raw.strip():
            try:
                emit(json.loads(raw))
                fresh += 1
            except json.JSONDecodeError:
                continue
    return offset + end + 1, fresh
