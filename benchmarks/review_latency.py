"""Time to show the next sample, with its evidence, in the review app on a 1,000-sample run.

    python benchmarks/review_latency.py [--samples 1000] [--browser-steps 200] [--out FILE]

The run directory is SYNTHETIC, written through the real writers (RunRecorder, write_selected,
the review log) in the real formats: per sample a dataset line and three trajectory versions,
each answer of 4-5 sentences taken from the starter pack with per-sentence evidence (labels,
spans, two supporting items and a rival, ids of the starter pack, so they resolve to texts as
an ephemeral run's do), contrast answers, a fifth of the samples selected and 30% already reviewed. The
app is the real one: `caredio review` started as a user starts it (its own process, uvicorn on
loopback), asked over HTTP the way the page asks:

* ``j`` (next sample): ``GET /api/samples/<id>`` — the sample, its evidence resolved to item
  texts, its versions word-diffed;
* ``a`` (accept, then the next): ``POST .../decision`` (appended and fsynced) then the GET;
* the browser: a real headless Chromium pressing ``j``, from the key press until the next
  sample's id is on the page (rendering included; the page prefetches the next sample, as it
  does for a reviewer).

The server's start-up (loading the embedding model in the background for re-scoring edits) is
waited out first: the figures are the steady state a reviewer works in.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from caredio.config.loading import load_settings
from caredio.memory.ingest import starter_pack
from caredio.prompts import load_templates
from caredio.review.store import ReviewLog
from caredio.rundir.formats import LABELS, PlanEntry, Version, dataset_line
from caredio.rundir.recorder import RunRecorder, write_selected

CULTURES = ("Japan", "China", "South Korea", "Germany", "United States")
TOPICS = ("food_drink", "greetings_etiquette", "family", "holidays_festivals", "work_life")
BUDGET_MS = 200.0


def synthetic_run(root: Path, samples: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    items: dict[str, list[Any]] = {}
    for item in starter_pack():
        items.setdefault(item.culture, []).append(item)
    settings = load_settings(cultures=list(CULTURES), topics=list(TOPICS), out=str(root), run_id="bench",
                             contrast="auto", memory={"path": ":memory:"})
    run_dir = root / "bench"
    recorder = RunRecorder.create(run_dir, settings.snapshot(), load_templates(None))
    plan, lines = [], []
    for n in range(samples):
        culture, topic = CULTURES[n % len(CULTURES)], TOPICS[(n // len(CULTURES)) % len(TOPICS)]
        contrast = [c for c in CULTURES if c != culture][:2]
        spec = PlanEntry(sample_id=f"{culture.lower().replace(' ', '_')}-{topic}-{n:04d}", run_id="bench",
                         culture=culture, topic=topic, contrast=contrast, index=n)
        plan.append(spec)
        question = f"What is usual around {topic.replace('_', ' ')} ({n})?"
        versions: list[Version] = []
        for round_, step in enumerate(("initial", "response", "response")):
            picked = rng.sample(items[culture], rng.randint(4, 5))
            response = " ".join(item.text for item in picked)
            evidence, at = [], 0
            for item in picked:
                start = response.index(item.text, at)
                at = start + len(item.text)
                rival_pool = items[rng.choice(contrast)]
                evidence.append({
                    "label": rng.choice(LABELS), "span": [start, at], "relevance": round(rng.random(), 3),
                    "weight": round(rng.random(), 2), "attribution": round(rng.random(), 3),
                    "r_share": round(rng.random(), 2), "d_share": round(rng.random(), 2),
                    "support": [[i.id, round(rng.random(), 3)] for i in rng.sample(items[culture], 2)],
                    "rival": [rival_pool[0].culture, rng.choice(rival_pool).id, round(rng.random(), 3)],
                })
            scores = [round(rng.random(), 4) for _ in range(2)]
            version: Version = {
                "sample_id": spec["sample_id"], "round": round_, "step": step, "question": question,
                "response": response, "representativeness": scores[0], "distinctiveness": scores[1],
                "objective": round(sum(scores) / 2, 4), "culture": culture, "topic": topic,
                "contrast": contrast, "critique": "Generic or shared: ... Missing core: ...",
                "contrast_answers": {c: " ".join(i.text for i in rng.sample(items[c], 2)) for c in contrast},
                "grounding_ids": [i.id for i in rng.sample(items[culture], 6)], "evidence": evidence,
            }
            recorder.write_version(version)
            versions.append(version)
        best = max(versions, key=lambda v: v["objective"])
        line = dataset_line(spec, versions, best, "max_rounds", None)
        line["metadata"]["evidence"] = best["evidence"]
        recorder.write_sample(line)
        lines.append(line)
    recorder.write_plan(plan)
    recorder.write_run(run_id="bench", status="completed", planned=samples, completed=samples, failed=0)
    write_selected(run_dir, lines[: samples // 5])
    log = ReviewLog.open(run_dir)
    for line in lines[: samples * 3 // 10]:
        text = {"question": line["messages"][0]["content"], "response": line["messages"][1]["content"]}
        log.append({"reviewer": "bench", "sample_id": line["metadata"]["sample_id"], "decision": "accept",
                    "before": text, "after": text})
    return run_dir


def wait_idle(pid: int, quiet: float = 1.5, limit: float = 180.0) -> float:
    """Seconds until the process used no CPU for ``quiet`` seconds (its start-up is done)."""
    started = time.monotonic()

    def cpu() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    last, still = cpu(), time.monotonic()
    while time.monotonic() - started < limit:
        time.sleep(0.25)
        now = cpu()
        if now != last:
            last, still = now, time.monotonic()
        elif time.monotonic() - still >= quiet:
            break
    return time.monotonic() - started


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1), "max_ms": round(ordered[-1], 1)}


def browser_steps(url: str, steps: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=args)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.wait_for_selector("#sample-id")
        page.keyboard.press("s")  # supporting items shown: the heaviest page
        for _ in range(steps):
            before = page.inner_text("#sample-id")
            started = time.perf_counter()
            page.keyboard.press("j")
            page.wait_for_function("id => document.getElementById('sample-id').textContent !== id", arg=before)
            times.append((time.perf_counter() - started) * 1000)
        browser.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=200, help="accept-then-next steps timed")
    parser.add_argument("--browser-steps", type=int, default=200, help="0 skips the browser")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="review-bench-"))
    try:
        started = time.perf_counter()
        run_dir = synthetic_run(root, args.samples)
        built = time.perf_counter() - started
        env = {**os.environ, "USER": "bench", "HF_HUB_OFFLINE": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "caredio.cli.main", "review", str(run_dir)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        try:
            settle = wait_idle(proc.pid)
            parts = urlsplit(url)
            client = httpx.Client(base_url=f"{parts.scheme}://{parts.netloc}", timeout=30)
            client.get("/", params={"token": parts.query.removeprefix("token=")}).raise_for_status()
            started = time.perf_counter()
            listing = client.get("/api/samples").json()
            list_ms = (time.perf_counter() - started) * 1000
            order = [s["sample_id"] for s in listing["samples"]]
            nexts, sizes = [], []
            for sample_id in order:
                started = time.perf_counter()
                detail = client.get(f"/api/samples/{sample_id}")
                detail.raise_for_status()
                nexts.append((time.perf_counter() - started) * 1000)
                sizes.append(len(detail.content))
            undecided = [s["sample_id"] for s in listing["samples"] if s["decision"] is None]
            decided = []
            for sample_id, following in itertools.pairwise(undecided[: args.decisions + 1]):
                started = time.perf_counter()
                client.post(f"/api/samples/{sample_id}/decision", json={"decision": "accept"},
                            headers={"X-Requested-With": "caredio-review"}).raise_for_status()
                client.get(f"/api/samples/{following}").raise_for_status()
                decided.append((time.perf_counter() - started) * 1000)
            browser = browser_steps(url, args.browser_steps) if args.browser_steps and shutil.which("chromium") else []
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        result = {
            "samples": args.samples, "cpus": os.cpu_count(), "build_seconds": round(built, 1),
            "server_settle_seconds": round(settle, 1), "list_ms": round(list_ms, 1),
            "detail_bytes_mean": round(statistics.fmean(sizes)),
            "next_sample_http": percentiles(nexts), "accept_then_next_http": percentiles(decided),
            "next_sample_browser": percentiles(browser) if browser else None, "budget_ms": BUDGET_MS,
        }
        print(json.dumps(result, indent=2))
        if args.out:
            args.out.write_text(json.dumps(result, indent=2) + "\n")
        worst = max(result["next_sample_http"]["p95_ms"], (result["next_sample_browser"] or {}).get("p95_ms", 0))
        print(f"p95 of the next sample: {worst:.1f} ms ({'within' if worst <= BUDGET_MS else 'OVER'} "
              f"the {BUDGET_MS:.0f} ms budget)")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
