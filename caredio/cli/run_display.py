"""The live display of ``caredio run`` and ``caredio resume``, and the end-of-run summary table.

Samples run in parallel and tend to finish together, so counting finished samples leaves the
bars at 0 for most of a run. Progress is counted in scored versions instead (a sample has
``max_rounds + 1`` of them at most; one that stops early fills its share), each running sample
shows its round and what its agents are doing, and the clock is redrawn four times a second,
not when a call happens to finish. Off a terminal (or with ``--quiet``) it prints plain lines.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

MAX_SAMPLE_LINES = 8
_now = time.monotonic  # the display's clock: one seam, so a test can move it without waiting


@dataclass
class SampleProgress:
    culture: str
    versions: int = 0  # scored versions so far
    round: int = 0  # the round being worked on
    activity: str = "starting"
    best: float | None = None
    finished: bool = False


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class RunDisplay:
    """Consumes the run's progress events (``runner.start_run``'s ``on_event``)."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.live_mode = console.is_terminal and not quiet
        self.lock = threading.Lock()
        self.started = _now()
        self.planned = 0
        self.max_rounds = 0
        self.cultures: dict[str, int] = {}
        self.samples: dict[str, SampleProgress] = {}
        self.done: dict[str, int] = defaultdict(int)
        self.failed: dict[str, int] = defaultdict(int)
        self.scores: list[tuple[float, float, float]] = []
        self.calls_started = 0
        self.calls = 0
        self.retries = 0
        self.tokens = [0, 0]
        self.requests_at_once: int | None = None
        self.first_best: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
        self.live: Live | None = None

    def __enter__(self) -> RunDisplay:
        if self.live_mode:
            # Live renders `self` on every refresh (__rich__), so the clock ticks on its own.
            self.live = Live(self, console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    # -- events --------------------------------------------------------------------------------

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        with self.lock:
            handler = getattr(self, f"_on_{kind}", None)
            line = handler(data) if handler is not None else None
        # Printed outside the lock: the live view's refresh thread holds the console's lock
        # while it draws (and takes ours to read the state); both at once would deadlock.
        if line and not self.quiet:  # in live mode the lines scroll above the live view
            self.console.print(line, markup=False, highlight=False)

    def _on_planned(self, data: dict[str, Any]) -> str:
        self.planned = data["planned"]
        self.max_rounds = int(data.get("max_rounds") or 0)
        self.cultures = dict(data.get("cultures") or {})
        return f"planned {self.planned} samples"

    def _on_endpoint(self, data: dict[str, Any]) -> str:
        self.requests_at_once = data.get("requests_at_once")
        return (f"endpoint {data['endpoint']} (model {data['model']}), "
                f"{self.requests_at_once} request(s) at a time")

    def _sample(self, data: dict[str, Any]) -> SampleProgress:
        sample = self.samples.get(data["sample_id"])
        if sample is None:
            sample = self.samples[data["sample_id"]] = SampleProgress(str(data.get("culture", "?")))
            self.cultures.setdefault(sample.culture, 0)
        return sample

    def _on_sample_started(self, data: dict[str, Any]) -> None:
        self._sample(data).activity = "resuming" if data.get("resumed") else "starting"

    def _on_turn_started(self, data: dict[str, Any]) -> None:
        self.calls_started += 1
        sample = self.samples.get(data["sample_id"])
        if sample is not None and not sample.finished:
            sample.round = int(data["round"])
            sample.activity = f"{data['agent']}: {data['step']}"

    def _on_turn(self, data: dict[str, Any]) -> None:
        self.calls += 1
        self.retries += int(data.get("retries") or 0)
        self.tokens[0] += int(data.get("input_tokens") or 0)
        self.tokens[1] += int(data.get("output_tokens") or 0)

    def _on_version(self, data: dict[str, Any]) -> str:
        self.scores.append((data["representativeness"], data["distinctiveness"], data["objective"]))
        sample = self._sample(data)
        sample.versions += 1
        sample.round = int(data["round"])
        sample.best = max(sample.best or 0.0, float(data["objective"]))
        return (f"{data['sample_id']} round {data['round']} ({data['step']}): "
                f"R={data['representativeness']:.3f} D={data['distinctiveness']:.3f} "
                f"J={data['objective']:.3f}")

    def _on_sample_done(self, data: dict[str, Any]) -> str:
        sample = self._sample(data)
        sample.finished = True
        self.done[sample.culture] += 1
        self.first_best[sample.culture].append((data["first"], data["best"]))
        return (f"{data['sample_id']} done: best J={data['best']['objective']:.3f} "
                f"(round {data['best']['round']})")

    _on_sample_skipped = _on_sample_done  # finished before a resume: counted as done

    def _on_sample_failed(self, data: dict[str, Any]) -> str:
        sample = self._sample(data)
        sample.finished = True
        self.failed[sample.culture] += 1
        return f"{data['sample_id']} FAILED: {data['error']}"

    # -- rendering -----------------------------------------------------------------------------

    def _units(self, culture: str | None = None) -> tuple[int, int]:
        """(versions scored or accounted for, versions at most) over a culture or the run."""
        per_sample = self.max_rounds + 1
        chosen = [c for c in self.cultures if culture in (None, c)]
        total = sum(self.cultures[c] for c in chosen) * per_sample
        done = sum(per_sample if s.finished else min(s.versions, per_sample)
                   for s in self.samples.values() if s.culture in chosen)
        return done, total

    def __rich__(self) -> RenderableType:
        with self.lock:
            return self._render()

    def _render(self) -> Group:
        elapsed = _now() - self.started
        bars = Table.grid(padding=(0, 1))
        for culture, planned in self.cultures.items():
            done, total = self._units(culture)
            finished = self.done[culture] + self.failed[culture]
            failed = f", {self.failed[culture]} failed" if self.failed[culture] else ""
            bars.add_row(Text(culture, style="bold"), ProgressBar(total=max(total, 1), completed=done, width=30),
                         Text(f"{finished}/{planned} samples{failed} · {done}/{total} versions"))
        running = [(sid, s) for sid, s in self.samples.items() if not s.finished]
        lines = Table.grid(padding=(0, 2))
        for sample_id, sample in running[:MAX_SAMPLE_LINES]:
            best = f"best J {sample.best:.3f}" if sample.best is not None else ""
            lines.add_row(Text(f"  {sample_id}", style="cyan"),
                          Text(f"round {sample.round}/{self.max_rounds}"), Text(sample.activity), Text(best))
        more = [Text(f"  and {len(running) - MAX_SAMPLE_LINES} more running")] if len(running) > MAX_SAMPLE_LINES else []
        done_all = sum(self.done.values())
        failed_all = sum(self.failed.values())
        status = Text(f"samples {done_all}/{self.planned} done, {failed_all} failed")
        if self.scores:
            n = len(self.scores)
            means = [sum(s[i] for s in self.scores) / n for i in range(3)]
            status.append(f" · mean of {n} versions: R {means[0]:.2f} D {means[1]:.2f} J {means[2]:.2f}")
        under_way = max(0, self.calls_started - self.calls)
        bound = f", the endpoint takes {self.requests_at_once} at a time" if self.requests_at_once else ""
        units_done, units_total = self._units()
        remaining = ""
        if units_done and units_total > units_done:
            remaining = f" · remaining ~{_clock(elapsed / units_done * (units_total - units_done))}"
        cost = Text(f"agent calls {self.calls} done, {under_way} under way{bound} · retries {self.retries}"
                    f" · tokens in {self.tokens[0]} out {self.tokens[1]} · elapsed {_clock(elapsed)}{remaining}")
        return Group(bars, lines, *more, status, cost)

    def summary_table(self) -> Table:
        table = Table(title="Per culture: first version -> best version")
        for column in ("culture", "samples", "R first", "R best", "D first", "D best", "J first", "J best"):
            table.add_column(column, justify="left" if column == "culture" else "right")
        for culture, pairs in sorted(self.first_best.items()):
            def mean(which: int, key: str, rows: list[tuple[dict[str, Any], dict[str, Any]]] = pairs) -> str:
                return f"{sum(p[which][key] for p in rows) / len(rows):.3f}"
            table.add_row(culture, str(len(pairs)),
                          mean(0, "representativeness"), mean(1, "representativeness"),
                          mean(0, "distinctiveness"), mean(1, "distinctiveness"),
                          mean(0, "objective"), mean(1, "objective"))
        return table
