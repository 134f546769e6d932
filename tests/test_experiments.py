"""The experiments' plan (experiments/claims.py) and the page it writes (results_doc.py).

The runs themselves take hours (``make results``); here the plan is checked against the shipped
recipes, the verdict rules against rows whose answer is known, and the page writer against
reports shaped like real ones.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

import claims as plan  # noqa: E402
import results  # noqa: E402
from results_doc import write_docs  # noqa: E402

from robust_compress.recipe.loader import load_recipe  # noqa: E402

ALL_RUNS = {run.name: run for c in plan.claims() for _, run in c.rows}
WITH_BASES = {**ALL_RUNS, **plan.BASES}


@pytest.mark.parametrize("name", sorted(ALL_RUNS))
def test_every_run_is_a_shipped_recipe_that_loads(name, tmp_path):
    run = ALL_RUNS[name]
    recipe = load_recipe(results.RECIPES / f"{run.recipe}.yaml", results.overrides(run, tmp_path))
    assert recipe.name == run.recipe
    if run.base:
        assert recipe.model.weights == str(tmp_path / run.base / "checkpoints" / "last.pt")
        assert run.base in plan.BASES
    for key, value in run.args:
        assert f"args.{key}={value}" in results.overrides(run, tmp_path)


def test_runs_have_distinct_folders():
    by_name = {}
    for c in plan.claims():
        for _, run in c.rows:
            assert by_name.setdefault(run.name, run) == run  # one name, one run


def _rows(labels, robust):
    return {label: {"robust": robust(label)} for label in labels}


def _claim(number):
    return next(c for c in plan.claims() if c.number == number)


def test_hydra_verdict_follows_the_numbers():
    labels = [label for label, _ in _claim(2).rows]
    wins = _rows(labels, lambda k: 0.60 if k.startswith("hydra") else 0.50)
    loses = _rows(labels, lambda k: 0.40 if k.startswith("hydra") else 0.50)
    assert _claim(2).judge(wins)[0] == "holds"
    assert _claim(2).judge(loses)[0] == "does not hold"


def test_concurrent_verdict_is_partial_when_one_alternative_wins():
    labels = [label for label, _ in _claim(1).rows]
    scores = {"small dense model from scratch": 0.80}
    rows = _rows(labels, lambda k: scores.get(k, 0.70))
    assert _claim(1).judge(rows)[0] == "holds only partly"


def _report(robust: float, params: int = 47610) -> dict:
    return {
        "seed": 0,
        "stages": [{"name": "0:prune", "seconds": 12.0}, {"name": "1:audit", "seconds": 3.0}],
        "per_stage": [{"n_clean": 10000}],
        "models": {"final": {"params": params, "macs": 451178}},
        "metrics": {"final": {"clean": 0.8, "robust": robust, "robust_samples": 1000}},
        "onnx": {"fp32": {"bytes": 190000}},
        "prune": {"sparsity": 0.5},
        "audit": {"final": {"checks": [{"name": "large_eps", "passed": robust > 0.5}]}},
    }


def test_page_lists_every_row_verdict_and_plot(tmp_path):
    reports = {name: _report(0.7) for name in WITH_BASES}
    reports["c2-hydra-ratio0.9"] = _report(0.4)
    path = write_docs(plan.claims(), reports, tmp_path, 60.0, "")
    text = path.read_text()
    for c in plan.claims():
        assert f"## Claim {c.number}:" in text
        assert (tmp_path / "img" / c.plot).stat().st_size > 1000
    assert text.count("**Verdict on Fashion-MNIST:") == 5
    assert "40.0% (1,000) ⚠ large_eps" in text  # the failed check is shown beside its figure
    assert "| 15 (30) |" in text  # claim 4's compute column adds the base's 15 seconds


def test_page_says_what_is_missing(tmp_path):
    reports = {name: _report(0.7) for name in WITH_BASES if not name.startswith("c5-")}
    text = write_docs(plan.claims(), reports, tmp_path, 1.0, "").read_text()
    assert "Not measured yet" in text and text.count("**Verdict on Fashion-MNIST:") == 4
