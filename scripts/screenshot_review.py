"""Screenshots of the review app for docs/review.md, with real evidence.

Usage: python scripts/screenshot_review.py [OUT_DIR]   (default docs/images)

A 4-sample run is made by the real graph against the FAKE stub server answering with the
hand-written answers of testing/review.py, scored with the REAL embedding model (MiniLM), so
the evidence and its supporting items are what the scorer really finds. `caredio review` is
started as a user starts it and driven in headless Chromium (Debian's chromium); the PNGs are
reduced to 128 colours. The tests (tests/review/test_browser.py) take the same pages on the
FAKE embedder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main(out: Path) -> int:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from caredio.memory.embeddings import default_embedder
    from testing.review import make_run

    work = Path(tempfile.mkdtemp(prefix="review-shots-"))
    try:
        run = make_run(work, embedder=default_embedder())
        env = {**os.environ, "USER": "ana", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-m", "caredio.cli.main", "review", str(run)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        shots = []
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(120_000)
                page.goto(url)
                page.wait_for_selector("#sample-id")

                def shot(name: str) -> None:
                    path = work / f"review-{name}.png"
                    page.screenshot(path=str(path))
                    shots.append(path)

                page.keyboard.press("s")
                page.wait_for_selector("#support .segpanel")
                shot("sample")
                page.keyboard.press("a")
                page.wait_for_function("() => document.getElementById('progress').textContent.startsWith('1/')")
                page.keyboard.press("r")
                page.wait_for_selector("#reject:not([hidden])")
                shot("reject")
                page.keyboard.press("2")
                page.wait_for_function("() => document.getElementById('progress').textContent.startsWith('2/')")
                page.keyboard.press("e")
                page.wait_for_selector("#editor:not([hidden])")
                page.fill("#edit-response", "People bow when they greet, and the depth of the bow shows "
                          "respect. Business cards are offered with both hands. A first meeting ends with "
                          "a bow, not a hug.")
                shot("edit")
                page.keyboard.press("Control+Enter")
                page.wait_for_function("() => document.getElementById('status').textContent.includes('edit saved')")
                shot("edited")
                page.click("#list .item[data-id='china-food_drink-000']")  # its answer holds markup
                page.wait_for_function("() => document.getElementById('answer').textContent.includes('<script>')")
                shot("injection")
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        out.mkdir(parents=True, exist_ok=True)
        for path in shots:
            Image.open(path).convert("RGB").quantize(colors=128).save(out / path.name, optimize=True)
            print(out / path.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images"))
