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
import results_doc  # noqa: E402
from results_doc import write_docs  # noqa: E402

from robust_compress.recipe.loader import load_recipe  # noqa: E402

ALL_RUNS = {r.name: r for c in plan.claims() for k, _ in c.rows for r in plan.seeded_runs(c, k)}
WITH_BASES = {**ALL_RUNS, **plan.all_bases(plan.claims())}


@pytest.mark.parametrize("name", sorted(ALL_RUNS))
def test_every_run_is_a_shipped_recipe_that_loads(name, tmp_path):
    run = ALL_RUNS[name]
    recipe = load_recipe(results.RECIPES / f"{run.recipe}.yaml", results.overrides(run, tmp_path))
    assert recipe.name == run.recipe
    if run.base:
        assert recipe.model.weights == str(tmp_path / run.base / "checkpoints" / "last.pt")
        assert run.base in plan.all_bases(plan.claims())
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
    for name in ("c2-hydra-ratio0.9", "c2-hydra-ratio0.9-seed1", "c2-hydra-ratio0.9-seed2"):
        reports[name] = _report(0.4)
    path = write_docs(plan.claims(), reports, tmp_path, 60.0, "")
    text = path.read_text()
    for c in plan.claims():
        assert f"## Claim {c.number}:" in text
        assert (tmp_path / "img" / c.plot).stat().st_size > 1000
    assert text.count("**Verdict on Fashion-MNIST:") == 5
    # the failed check is shown beside its figure
    assert "40.0% ± 0.0 [38.3, 41.8] (3 seeds × 1,000) ⚠ large_eps" in text
    assert "40.0% [" not in text and "70.0% [67.1, 72.8] (1,000) |" in text  # claims 3, 4
    assert "| 15 (30) |" in text  # claim 4's compute column adds the base's 15 seconds


def test_page_says_what_is_missing(tmp_path):
    reports = {name: _report(0.7) for name in WITH_BASES if not name.startswith("c5-")}
    text = write_docs(plan.claims(), reports, tmp_path, 1.0, "").read_text()
    assert "Not measured yet" in text and text.count("**Verdict on Fashion-MNIST:") == 4


def test_claim_rows_get_the_same_adversarial_epochs_after_their_prune(tmp_path):
    epochs = {}
    for name in ("c1-admm", "c1-inherit"):
        recipe = load_recipe(results.RECIPES / f"{name}.yaml")
        epochs[name] = recipe.stages[0].finetune_epochs
    assert epochs["c1-admm"] == epochs["c1-inherit"] == 3
    assert "3 adversarial epochs after" in _claim(1).note


def test_claims_1_2_5_run_three_seeds_each_on_its_own_base():
    for c in plan.claims():
        want = 3 if c.number in (1, 2, 5) else 1
        assert len(c.seeds) >= want
        for label, _ in c.rows:
            runs = plan.seeded_runs(c, label)
            assert sorted(r.seed for r in runs) == list(c.seeds)
            assert len({r.name for r in runs}) == len(runs)
            for r in runs:
                assert r.base is None or r.base == plan.base_of(r.seed, r.base).name
                assert r.base is None or r.base in plan.all_bases(plan.claims())
    run = plan.seeded_runs(_claim(1), "ADMM: prune while training adversarially")[1]
    assert run.name == "c1-admm-seed1" and run.base == "base-pgd-seed1"
    assert "seed=1" in results.overrides(run, Path("/r"))


def test_verdict_margin_is_two_standard_errors():
    labels = [label for label, _ in _claim(5).rows]
    rows = {label: {"robust": 0.60, "se": 0.01} for label in labels}
    rows["lottery ticket 80%"] = {"robust": 0.625, "se": 0.01}  # +2.5 points, 2 SE = 2.8
    assert _claim(5).judge(rows)[0] == "holds only partly"
    rows["lottery ticket 80%"] = {"robust": 0.63, "se": 0.01}  # +3 points
    assert _claim(5).judge(rows)[0] == "holds"


def _masked(robust_of, labels, seeds=(0, 1, 2), n=1000):
    """Rows with per-image outcomes: the first ``round(robust * n)`` images robust, per seed."""
    rows = {}
    for label in labels:
        masks = []
        for seed in seeds:
            k = round(robust_of(label, seed) * n)
            masks.append("1" * k + "0" * (n - k))
        mean = sum(m.count("1") for m in masks) / (n * len(seeds))
        rows[label] = {"robust": mean, "seeds": list(seeds), "masks": masks, "se": 0.05}
    return rows


def test_verdicts_use_the_paired_test_when_images_are_known():
    labels = [label for label, _ in _claim(5).rows]
    ticket, control = "lottery ticket 80%", "random re-initialisation 80% (control)"
    # +1.5 points on 3 seeds x 1,000 paired images: the same 15 images robust in all 3 seeds
    # for the ticket and in none for the control (sign test p ~ 6e-5; the image, not the
    # image-seed pair, is the unit); the 2-SE rule with se 0.05 would have called it chance.
    rows = _masked(lambda k, s: 0.615 if k == ticket else 0.60, labels)
    assert _claim(5).judge(rows)[0] == "holds"
    assert "sign test p = 6.1e-05" in _claim(5).judge(rows)[1]
    assert plan.compare(rows, ticket, control)["only_a"] == 15
    # the same means from images that trade places: many lost and gained, not significant
    swapped = dict(rows)
    swapped[ticket] = {**rows[ticket], "masks": ["0" * 100 + "1" * 615 + "0" * 285] * 3}
    level = plan.compare(swapped, ticket, control)
    assert (level["only_a"], level["only_b"]) == (115, 100) and level["sign"] == 0
    assert _claim(5).judge(swapped)[0] == "holds only partly"


def test_page_shows_mean_and_spread_over_seeds(tmp_path):
    reports = {}
    for c in plan.claims():
        for label, _ in c.rows:
            for r in plan.seeded_runs(c, label):
                reports[r.name] = _report(0.70 + 0.01 * r.seed)
    for name in plan.all_bases(plan.claims()):
        reports.setdefault(name, _report(0.7))
    text = write_docs(plan.claims(), reports, tmp_path, 60.0, "").read_text()
    assert "71.0% ± 1.0 [69.4, 72.6] (3 seeds × 1,000)" in text
    assert "sign test" in text and "McNemar's test" in text


def test_a_finished_run_is_reused_across_new_default_options(tmp_path):
    from robust_compress.recipe.loader import dump_resolved

    run = ALL_RUNS["c1-admm"]
    folder = tmp_path / run.name
    folder.mkdir()
    (folder / "report.json").write_text("{}")
    text = dump_resolved(
        load_recipe(results.RECIPES / "c1-admm.yaml", results.overrides(run, tmp_path))
    )
    assert "apgd_targets: null" in text
    without = "".join(line for line in text.splitlines(True) if "apgd_targets" not in line)
    (folder / "recipe.resolved.yaml").write_text(without)
    assert results.is_done(run, folder, tmp_path)  # an option added since, at its default
    (folder / "recipe.resolved.yaml").write_text(text.replace("samples: 1000", "samples: 999"))
    assert not results.is_done(run, folder, tmp_path)
    (folder / "recipe.resolved.yaml").write_text(text + "no_such_option: 1\n")
    assert not results.is_done(run, folder, tmp_path)


def test_page_time_counts_only_when_runs_ran(tmp_path):
    """A run stopped and resumed hours later, beside another: the gap is nobody's time."""
    log = tmp_path / "run.log"
    log.write_text(
        "2026-12-03 10:00:00,000 robust_compress.cli.run INFO run folder /x\n"
        "2026-12-03 10:10:00,000 robust_compress.training.fit INFO epoch 1\n"
        "Traceback (most recent call last):\n"
        "2026-12-03 15:00:00,000 robust_compress.recipe.loader DEBUG recipe 'x' is valid\n"
        "2026-12-03 15:00:00,000 robust_compress.cli.run INFO run folder /x\n"
        "2026-12-03 15:20:00,000 robust_compress.audit.runner INFO audit done\n"
    )
    spans = results.log_spans(log)
    assert spans == [
        ("2026-12-03 10:00:00", "2026-12-03 10:10:00"),
        ("2026-12-03 15:00:00", "2026-12-03 15:20:00"),
    ]
    other = [("2026-12-03 10:05:00", "2026-12-03 10:30:00")]
    reports = {"a": {"log_spans": spans}, "b": {"log_spans": other}}
    assert results_doc._span_minutes(reports) == pytest.approx(30 + 20)


def test_a_claim_part_way_shows_the_seeds_every_row_finished(tmp_path):
    reports = {name: _report(0.7) for name in WITH_BASES if "seed2" not in name}
    del reports["c1-scratch-seed1"]  # claim 1: only seed 0 is finished by every row
    text = write_docs(plan.claims(), reports, tmp_path, 1.0, "").read_text()
    claim1 = text.split("## Claim 1:")[1].split("## Claim 2:")[0]
    assert "**Part-way:** the runs " in claim1 and "c1-scratch-seed1" in claim1
    assert "(3 seeds" not in claim1 and "(2 seeds" not in claim1
    assert "| 0 |" in claim1 and "70.0% [67.1, 72.8] (1,000)" in claim1
    claim2 = text.split("## Claim 2:")[1].split("## Claim 3:")[0]
    assert "70.0% ± 0.0 [68.0, 72.0] (2 seeds × 1,000)" in claim2
    assert "- Claim 2: **" in text and "(part-way, provisional)" in text
    unmeasured = write_docs(plan.claims(), {}, tmp_path, 1.0, "").read_text()
    assert "- Claim 1: **not measured**\n" in unmeasured and "provisional" not in unmeasured
    assert "Part-way" not in text.split("## Claim 3:")[1].split("## Claim 5:")[0]


def test_why_a_claim_may_not_hold_quotes_the_runs(tmp_path):
    """The explanations read the methods' own reports, not numbers typed into claims.py."""
    reports = {name: _report(0.7) for name in WITH_BASES}
    for seed, name in enumerate(("c1-admm", "c1-admm-seed1", "c1-admm-seed2")):
        reports[name]["prune"]["admm"] = {"residual_before_prune": 0.01 * (seed + 1)}
    for ratio, loss in ((0.5, 1.5), (0.7, 1.7), (0.9, 1.9)):
        for shift, suffix in ((-0.3, ""), (0.0, "-seed1"), (0.6, "-seed2")):
            hydra = {"score_loss": [2.3, loss + shift], "score_epochs": 2}
            reports[f"c2-hydra-ratio{ratio}{suffix}"]["prune"]["hydra"] = hydra
    reports["c1-inherit"] = _report(0.74)
    text = write_docs(plan.claims(), reports, tmp_path, 1.0, "").read_text()
    assert "before the hard prune was 0.010, 0.020, 0.030 (per seed" in text
    assert "the inherited weights keep 71.3% against the dense model's 70.0%" in text
    assert "for 2 epoch(s) here" in text
    assert "last score epoch 1.60 at 50%, 1.80 at 70%, 2.00 at 90%, mean over seeds" in text
    assert "reaches 70.0-70.0% against 70.0% for adversarial training from the start" in text


def test_runs_go_seed_by_seed_after_their_bases(tmp_path, monkeypatch):
    order = []
    monkeypatch.setattr(results, "execute", lambda run, runs_dir: order.append(run.name) or {})
    claim = _claim(1)
    runs = [r for label, _ in claim.rows for r in plan.seeded_runs(claim, label)]
    results.run_all(runs, tmp_path, jobs=1)
    bases = [n for n in order if n.startswith("base-")]
    assert order[: len(bases)] == bases and len(bases) == 3
    rest = order[len(bases) :]
    seeds = [int(n.rsplit("-seed", 1)[1]) if "-seed" in n else 0 for n in rest]
    assert seeds == sorted(seeds) and seeds.count(0) == 3
