"""report.html: one self-contained page, checked in a real headless browser."""

import re
import sys
from pathlib import Path

import pytest

from robust_compress.engine.session import Session
from robust_compress.recipe.loader import parse_recipe
from robust_compress.report.gallery import lost_indices

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
import report_screenshot  # noqa: E402

RECIPE = """
name: tiny-html
seed: 0
model: {spec: builtin:cnn_small}
data: {name: synthetic, batch_size: 128, train_subset: 256, test_subset: 64}
threat: {norm: linf, eps: 0.1}
stages:
  - train: {method: pgd, epochs: 2, adversary: {attack: pgd, steps: 1}}
  - prune: {importance: l1, ratio: 0.6, finetune_epochs: 1, adversary: {attack: fgsm_rs}}
  - export: {fp32: true, int8: false}
  - audit: {samples: 48, attacks: [fgsm, pgd], pgd_steps: 2, eps_sweep: [0.05, 0.2]}
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "run"
    session = Session(parse_recipe(RECIPE), out)
    session.setup()
    report = session.run()
    return out / "report.html", report


def test_report_html_is_self_contained(page):
    path, report = page
    text = path.read_text()
    for heading in ("Stages", "Accuracy against eps", "MACs, size and latency", "Audit checks"):
        assert f"<h2>{heading}</h2>" in text
    refs = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert "<script" not in text and "<link" not in text
    lost = lost_indices(report["audit"])
    assert text.count('<figure><img src="data:') == len(lost)


def test_lost_indices_reads_both_masks():
    audit = {"dense": {"robust_mask": "1101"}, "final": {"robust_mask": "0100"}}
    assert lost_indices(audit) == [0, 3]
    assert lost_indices({"final": {"robust_mask": "01"}}) == []


def test_report_html_renders_in_chromium(page, tmp_path):
    if report_screenshot.browser() is None:
        pytest.skip("no chromium on PATH: apt-get install -y chromium (make test does as root)")
    path, _ = page
    png = tmp_path / "report.png"
    messages = report_screenshot.screenshot(path, png)
    assert messages == []
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_the_console_check_sees_errors(tmp_path):
    if report_screenshot.browser() is None:
        pytest.skip("no chromium on PATH")
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('boom')</script></body></html>")
    assert any("boom" in m for m in report_screenshot.screenshot(bad, tmp_path / "b.png"))
