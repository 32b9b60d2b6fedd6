"""The review app as a person uses it: a real headless Chromium (Debian's chromium, driven by
Playwright) on `caredio review` (its own process, real uvicorn on loopback), with the keyboard.

The run directory is small and made by the real graph against the FAKE stub server with the
FAKE hash embedder (testing/review.py: hand-written answers, one holding markup), so the test
is fast; the app, the server, the browser and the files are real.

Set REVIEW_SCREENSHOTS=DIR to keep the page's screenshots there (docs/images holds them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testing.review import INJECTION, decisions, start_review

pytestmark = [pytest.mark.services,
              pytest.mark.skipif(shutil.which("chromium") is None,
                                 reason="Debian's chromium is not installed (.ci/run installs it)")]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
EDITED = ("People bow when they greet, and the depth of the bow shows respect. "
          "Business cards are offered with both hands. A first meeting ends with a bow, not a hug.")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"review-{name}.png"
    page.screenshot(path=str(path))
    assert path.read_bytes().startswith(PNG)
    keep = os.environ.get("REVIEW_SCREENSHOTS")
    if keep:
        shutil.copy(path, Path(keep) / path.name)


def progress(page: Any, text: str) -> None:
    from playwright.sync_api import TimeoutError as Timeout

    try:
        page.wait_for_function("t => document.getElementById('progress').textContent === t", arg=text)
    except Timeout:
        pytest.fail(f"progress: {page.inner_text('#progress')!r}, not {text!r}; status "
                    f"{page.inner_text('#status')!r}; page errors {page.errors}")


def current(page: Any) -> str:
    return str(page.inner_text("#sample-id"))


def showing(page: Any, sample_id: str) -> None:
    page.wait_for_function("id => document.getElementById('sample-id').textContent === id", arg=sample_id)


def open_page(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    page.goto(url)
    page.wait_for_selector("#sample-id")
    return page


def test_review_three_samples_by_keyboard_reload_kill_restart_and_export(
        stub_run: Path, browser: Any, tmp_path: Path) -> None:
    proc, url = start_review(stub_run, "--reviewer", "ana")
    try:
        page = open_page(browser, url)
        assert "token=" not in page.url  # the token left the address bar for the cookie
        order = page.eval_on_selector_all("#list .item", "items => items.map(i => i.dataset.id)")
        assert len(order) == 4 and current(page) == order[0]
        progress(page, "0/4 reviewed")
        assert "j next" in page.inner_text("footer") and "u undo" in page.inner_text("footer")

        page.keyboard.press("s")  # every sentence's supporting items
        page.wait_for_selector("#support .segpanel")
        shot(page, tmp_path, "sample")
        page.keyboard.press("a")
        progress(page, "1/4 reviewed")
        showing(page, order[1])

        page.keyboard.press("r")
        page.wait_for_selector("#reject:not([hidden])")
        shot(page, tmp_path, "reject")
        page.keyboard.press("2")  # the second reason of the list
        progress(page, "2/4 reviewed")
        showing(page, order[2])

        page.keyboard.press("e")
        page.wait_for_selector("#editor:not([hidden])")
        page.fill("#edit-response", EDITED)
        shot(page, tmp_path, "edit")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("#editor", state="hidden")
        progress(page, "3/4 reviewed")
        page.wait_for_function("() => document.getElementById('status').textContent.includes('re-scored')")
        assert page.inner_text("#answer") == EDITED
        assert page.locator("#answer .seg").count() >= 3  # the edit's own evidence, sentence by sentence
        assert "edited by ana" in page.inner_text("#versions")
        shot(page, tmp_path, "edited")

        page.reload()  # the page is built again from the server: the decisions are kept
        page.wait_for_selector("#sample-id")
        progress(page, "3/4 reviewed")
        assert current(page) == order[3]  # it resumes at the first sample not decided
        marks = {i: page.get_attribute(f"#list .item[data-id='{i}']", "class") for i in order[:3]}
        assert ["accept" in marks[order[0]], "reject" in marks[order[1]], "edit" in marks[order[2]]] == [True] * 3
        page.select_option("#f-decision", "reject")  # the filters: decision, then culture
        page.wait_for_function("() => document.querySelectorAll('#list .item').length === 1")
        assert page.inner_text("#shown") == "showing 1 of 4"
        page.select_option("#f-decision", "")
        culture = page.inner_text("#sample .badge >> nth=0")
        page.select_option("#f-culture", culture)
        assert page.locator("#list .item").count() == 2  # two samples per culture
        page.select_option("#f-culture", "")
        page.wait_for_function("() => document.querySelectorAll('#list .item').length === 4")
        page.click(f"#list .item[data-id='{order[3]}']")  # the filter moved to the rejected one
        showing(page, order[3])

        page.keyboard.press("a")
        page.keyboard.press("u")  # at once: keys act in the order pressed, so this undoes that accept
        page.wait_for_function("t => document.getElementById('status').textContent === t",
                               arg=f"undid the accept of {order[3]}")
        progress(page, "3/4 reviewed")
        showing(page, order[3])
        assert page.errors == []
        os.kill(proc.pid, signal.SIGKILL)  # mid-review, without warning
        proc.wait(timeout=20)
        lines = decisions(stub_run)
        assert [d["decision"] for d in lines] == ["accept", "reject", "edit", "accept", "undo"]
        assert lines[3]["sample_id"] == order[3] and lines[4]["undoes"] == lines[3]["id"]
        assert lines[1]["reason"] == "stereotype or offensive" and lines[2]["after"]["response"] == EDITED

        proc, url = start_review(stub_run, "--reviewer", "ana")
        page = open_page(browser, url)
        progress(page, "3/4 reviewed")
        assert current(page) == order[3]
    finally:
        proc.kill()
        proc.wait(timeout=20)

    def export(*flags: str) -> list[dict[str, Any]]:
        out = tmp_path / f"export{len(flags)}.jsonl"
        done = subprocess.run([sys.executable, "-m", "caredio.cli.main", "export", str(stub_run), "--format",
                               "openai", "--out", str(out), *flags], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in out.read_text().splitlines()]

    rejected = next(json.loads(x) for x in (stub_run / "dataset.jsonl").read_text().splitlines()
                    if json.loads(x)["metadata"]["sample_id"] == order[1])["messages"][-1]["content"]
    everything = [line["messages"][-1]["content"] for line in export()]
    assert len(everything) == 3 and EDITED in everything and rejected not in everything
    assert len(export("--reviewed-only")) == 2


def test_model_output_holding_markup_shows_as_text(stub_run: Path, browser: Any, tmp_path: Path) -> None:
    """An answer holding <script> and <b> (as a model may write) is text on the page: nothing
    runs, no element is made; an edit holding markup too."""
    # The injected answer as a run made before evidence has it: one unmarked piece of text; the
    # edit below is re-scored, so its markup is shown in marked sentences.
    path = stub_run / "dataset.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    target = next(line["metadata"]["sample_id"] for line in lines if INJECTION in line["messages"][-1]["content"])
    for line in lines:
        if line["metadata"]["sample_id"] == target:
            line["metadata"].pop("evidence")
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    proc, url = start_review(stub_run, "--reviewer", "ana")
    try:
        page = open_page(browser, url)
        page.click(f"#list .item[data-id='{target}']")
        showing(page, target)
        assert INJECTION in page.inner_text("#answer") and page.locator("#no-evidence").count() == 1
        assert page.locator("#sample script, #sample b").count() == 0
        assert page.title() != "pwned" and "pwned" not in page.evaluate("document.title")
        shot(page, tmp_path, "injection")
        page.keyboard.press("e")
        page.fill("#edit-response", "Tea is served with meals. <img src=x onerror=\"document.title='pwned'\">")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("#editor", state="hidden")
        page.wait_for_function("() => document.getElementById('answer').textContent.includes('<img')")
        assert page.locator("#answer .seg").count() >= 2  # the edit's evidence: marked sentences
        assert page.locator("#sample img").count() == 0 and page.evaluate("document.title") != "pwned"
        assert page.errors == []
    finally:
        proc.kill()
        proc.wait(timeout=20)
