"""Open a report.html in headless Chromium: screenshot it and collect console messages.

The browser test (tests/test_report_html.py) calls :func:`screenshot`; the docs' picture of
the quickstart's report comes from the same function:

    python experiments/report_screenshot.py RUN/report.html docs/img/report-quickstart.png

(``make report-screenshot`` does this for runs/quickstart). Needs Debian's ``chromium``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]\s*(.*)")


def browser() -> str | None:
    """The first headless-capable browser on PATH, or None."""
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def screenshot(page: Path, png: Path, size: tuple[int, int] = (1200, 3600)) -> list[str]:
    """Screenshot ``page`` into ``png``; return the page's console messages (none expected).

    Raises:
        RuntimeError: No browser, or it failed.
    """
    exe = browser()
    if exe is None:
        raise RuntimeError("no chromium on PATH (apt-get install -y chromium)")
    png.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",  # root in containers
        "--disable-gpu",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        f"--window-size={size[0]},{size[1]}",
        f"--screenshot={png.resolve()}",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not png.is_file():
        raise RuntimeError(f"{exe} failed ({done.returncode}): {done.stderr[-2000:]}")
    return [m.group(1) for m in map(CONSOLE.search, done.stderr.splitlines()) if m]


def main(argv: list[str]) -> int:
    """``report_screenshot.py REPORT_HTML OUT_PNG``."""
    page, png = Path(argv[0]), Path(argv[1])
    messages = screenshot(page, png)
    for message in messages:
        print(f"console: {message}", file=sys.stderr)
    print(f"wrote {png} ({png.stat().st_size:,} bytes)")
    return 1 if messages else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
