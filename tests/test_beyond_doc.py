"""docs/beyond-the-ball.md is what experiments/beyond_doc.py writes from its data file."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

from beyond_doc import write_page  # noqa: E402


def test_the_page_is_written_from_its_data(tmp_path):
    found = json.loads((ROOT / "docs" / "beyond-the-ball.json").read_text())
    write_page(found, tmp_path)
    page = (tmp_path / "beyond-the-ball.md").read_text()
    assert page == (ROOT / "docs" / "beyond-the-ball.md").read_text()
    assert (tmp_path / "img" / "beyond-the-ball.png").stat().st_size > 10_000
    for heading in ("## Common corruptions", "## Randomized smoothing", "### sigma 0.25"):
        assert heading in page
