"""benchmarks/audit_vs_autoattack.py --resume: which measured rows a later run keeps.

The benchmark itself (AutoAttack, about 20 minutes per model) is not run here.
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import audit_vs_autoattack as bench  # noqa: E402


def _args(out: Path, **changes) -> argparse.Namespace:
    base = {"run": Path("runs/quickstart"), "samples": 1000, "eps": 0.1, "aa_steps": 100}
    return argparse.Namespace(**{**base, "resume": True, "out": out, "models": "final", **changes})


def test_resume_keeps_rows_of_the_same_settings_only(tmp_path):
    out = tmp_path / "aa.md"
    same = bench.settings(_args(out))
    rows = [{"model": "dense", "settings": same}, {"model": "final", "settings": same}]
    rows.append({"model": "older"})  # a row from before settings were recorded
    out.with_suffix(".json").write_text(json.dumps(rows))
    kept = [r["model"] for r in bench.finished_rows(_args(out))]
    assert kept == ["dense", "final"]  # dense is kept although --models names final only
    assert bench.finished_rows(_args(out, eps=0.05)) == []
    assert bench.finished_rows(_args(out, aa_steps=10)) == []
    assert bench.finished_rows(_args(out, resume=False)) == []
