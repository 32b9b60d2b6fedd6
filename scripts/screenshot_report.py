"""Screenshot a run's report.html in headless Chromium, to look at what a user will see.

Usage: python scripts/screenshot_report.py RUN_DIR [OUT.png]

Needs a Chromium binary (Debian: ``apt-get install chromium``); the test suite does not: it
parses the HTML and decodes the embedded PNGs instead (tests/test_report.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html: Path, out: Path, width: int = 1200, height: int = 3400) -> Path:
    browser = find_chromium()
    if browser is None:
        raise SystemExit("no chromium found; install one (apt-get install chromium)")
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={width},{height}", f"--screenshot={out}", html.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    run_dir = Path(argv[0])
    html = run_dir / "report.html"
    if not html.exists():
        print(f"{html}: not found; run `caredio report {run_dir}` first", file=sys.stderr)
        return 2
    out = Path(argv[1]) if len(argv) > 1 else run_dir / "report_screenshot.png"
    print(screenshot(html, out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
