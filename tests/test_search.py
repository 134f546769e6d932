"""The search stage's budget logic, resume and determinism, and robust sensitivity (issue 17)."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from robust_compress.engine.session import Session
from robust_compress.errors import RecipeError
from robust_compress.pruning.size import size_of
from robust_compress.recipe.loader import parse_recipe
from robust_compress.search.allocate import Curve, allocate, allocate_until
from robust_compress.search.validation import Validator

BASE = """
name: search
seed: 2
model: {spec: builtin:cnn_small}
data: {name: synthetic, batch_size: 64, train_subset: 256, test_subset: 64, holdout: 64}
threat: {norm: linf, eps: 0.1}
stages:
  - train: {method: fgsm_rs, epochs: 1}
  - search:
      max_robust_drop: BUDGET
      steps: 2
      target: 0.2
      ratios: [0.5, 0.9]
      bits: [8, 4]
      finetune_epochs: 1
      val_samples: 64
      val_attack: {attack: pgd, steps: 2}
      adversary: {attack: fgsm_rs}
"""


def _recipe(budget: float) -> str:
    return BASE.replace("BUDGET", str(budget))


@pytest.fixture
def macs_decide(monkeypatch):
    """Validation robust accuracy scripted by size: 1.0 at >= ``keep`` of the start's MACs."""
    rule = {"keep": 0.3, "start": None}

    def measure(self, model):
        macs = size_of(model, torch.rand(1, 1, 28, 28))["macs"]
        rule["start"] = rule["start"] or macs
        robust = 1.0 if macs >= rule["keep"] * rule["start"] else 0.0
        return {"clean": robust, "robust": robust}

    monkeypatch.setattr(Validator, "__call__", measure)
    return rule


def _run(recipe: str, out=None) -> tuple[Session, dict]:
    session = Session(parse_recipe(recipe), out)
    session.setup()
    return session, session.run()


def test_a_generous_budget_reaches_the_largest_compression_allowed(macs_decide):
    macs_decide["keep"] = 0.0
    session, report = _run(_recipe(100))
    search = report["search"]
    start, last = search["steps"][0], search["steps"][-1]
    assert [s["accepted"] for s in search["steps"]] == [True, True, True]
    assert last["macs"] <= 0.2 * 1.01 * start["macs"]  # the target, within the 1% tolerance
    assert report["models"]["final"]["macs"] == last["macs"]
    assert "ran to the last aim" in search["stopped"] and search["reached_target"]
    assert search["finetune_epochs_used"] == 2


def test_a_budget_broken_at_step_two_keeps_step_one_and_says_so(macs_decide):
    session, report = _run(_recipe(2).replace("steps: 2\n", "steps: 2\n      retries: 0\n"))
    search = report["search"]
    step1, step2 = search["steps"][1], search["steps"][2]
    assert step1["accepted"] and not step2["accepted"]  # 45% of the MACs kept, then 20%
    assert search["accepted_step"] == 1 and "kept step 1" in search["stopped"]
    assert report["models"]["final"]["macs"] == step1["macs"] > step2["macs"]
    assert not search["reached_target"]


def test_a_step_over_budget_is_retried_with_a_smaller_one(macs_decide):
    session, report = _run(_recipe(2).replace("steps: 2\n", "steps: 2\n      retries: 2\n"))
    steps = report["search"]["steps"]
    assert [s["accepted"] for s in steps[:3]] == [True, True, False]  # step 2 aims at 20%
    retry = steps[3]
    assert steps[1]["aim"] > retry["aim"] > steps[2]["aim"]  # halfway between them
    assert len(steps) <= 1 + 2 + 2 * 2  # each retry, accepted or not, is bounded
    final = report["models"]["final"]["macs"]
    assert final >= 0.3 * steps[0]["macs"]  # never an over-budget model
    if any(s["accepted"] for s in steps[3:]):
        assert final < steps[1]["macs"]  # a retry within budget went further than step 1


def test_a_budget_no_step_meets_keeps_the_starting_model(macs_decide):
    macs_decide["keep"] = 0.99
    session, report = _run(_recipe(2))
    search = report["search"]
    assert search["accepted_step"] == 0 and "kept step 0" in search["stopped"]
    assert [s["accepted"] for s in search["steps"]] == [True, False, False, False]  # 2 retries
    assert report["models"]["final"]["params"] == search["start"]["params"]


def test_the_search_needs_a_validation_split():
    with pytest.raises(RecipeError, match="data.holdout"):
        parse_recipe(_recipe(2).replace(", holdout: 64", ""))


def test_allocation_prunes_the_cheapest_group_first():
    robust_cost = {"a": Curve.of([(0.5, 10.0)]), "b": Curve.of([(0.5, 0.5)])}
    saving = Curve.of([(0.5, 50.0)])
    curves = {g: (robust_cost[g], saving) for g in robust_cost}
    ratios = allocate(curves, {}, saving_needed=50.0, max_ratio=0.9)
    assert ratios["b"] == pytest.approx(0.5) and ratios["a"] == 0.0
    capped = allocate(curves, {"a": 0.2}, saving_needed=1e9, max_ratio=0.6)
    assert capped == pytest.approx({"a": 0.6, "b": 0.6})  # every group at the cap: stops


def test_allocation_asks_again_when_the_real_figure_misses_the_target():
    curves = {"a": (Curve.of([(0.9, 1.0)]), Curve.of([(0.9, 90.0)]))}
    seen = []

    def real(ratios):  # the real saving is 80% of the estimate
        seen.append(ratios["a"])
        return 100 - 0.8 * 100 * ratios["a"]

    ratios, value = allocate_until(curves, {}, 100.0, 60.0, 0.95, real)
    assert len(seen) > 1 and value <= 60.0 * 1.01 and ratios["a"] > 0.45


KILL = textwrap.dedent("""
    import os, signal, sys
    from robust_compress.engine.session import Session
    from robust_compress.engine.hooks import Hooks
    from robust_compress.recipe.loader import parse_recipe

    class Kill(Hooks):
        seen = 0
        def on_batch(self, stage, epoch, batch, loss):
            if stage == "1:search":
                Kill.seen += 1
                if Kill.seen == int(sys.argv[2]):
                    os.kill(os.getpid(), signal.SIGKILL)

    session = Session(parse_recipe(sys.stdin.read()), sys.argv[1], hooks=Kill())
    session.setup()
    session.run()
""")


@pytest.mark.parametrize("at_batch", [6])  # the second step's fine-tuning (4 batches a step)
def test_a_killed_search_resumes_where_it_was_and_gives_the_same_result(tmp_path, at_batch):
    recipe = _recipe(100)
    _, whole = _run(recipe, tmp_path / "whole")
    out = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", KILL, str(out), str(at_batch)],
        input=recipe,
        text=True,
        capture_output=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    from robust_compress.engine.runfolder import RunFolder

    killed = json.loads((out / "manifest.json").read_text())["files"]
    assert "report.json" not in killed  # it really stopped inside the search

    session = Session(parse_recipe(recipe), RunFolder(out, resume=True))
    session.setup()
    resumed = session.run(resume=True)
    keys = ("step", "accepted", "params", "macs", "robust", "clean")
    rows = [[s[k] for k in keys] for s in resumed["search"]["steps"]]
    assert rows == [[s[k] for k in keys] for s in whole["search"]["steps"]]
    assert resumed["search"]["layer_bits"] == whole["search"]["layer_bits"]
    assert json.loads((out / "report.json").read_text())["search"]["accepted_step"] == 2


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "robust_compress", *args, "--quiet"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def test_sensitivity_of_a_checkpoint_from_the_command_line(tmp_path):
    from robust_compress.models.specs import build_model

    model = build_model("builtin:cnn_tiny", 10, 1, input_size=(28, 28))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "sens"
    proc = _cli(
        "sensitivity",
        str(tmp_path / "w.pt"),
        "--model-spec",
        "builtin:cnn_tiny",
        "--data",
        "synthetic",
        "--holdout",
        "64",
        "--val-samples",
        "32",
        "--ratios",
        "0.5,0.9",
        "--bits",
        "8,2",
        "--val-steps",
        "1",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())["sensitivity"]
    layers = {
        n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    }
    assert {r["layer"] for r in report["bits"]} == layers and len(report["bits"]) == 2 * len(layers)
    assert len(report["prune"]) == 2 * len({r["layer"] for r in report["prune"]}) >= 2
    for row in report["prune"] + report["bits"]:
        assert row["drop"] == pytest.approx(100 * (report["start"]["robust"] - row["robust"]))
    dense = sum(p.numel() for p in model.parameters())
    assert all(r["params"] < dense for r in report["prune"])  # each row really pruned a group
    assert (out / "plots" / "sensitivity-prune.png").stat().st_size > 1000
    assert "## Robust sensitivity" in proc.stdout


def test_search_of_a_missing_model_is_a_clear_error(tmp_path):
    proc = _cli("search", str(tmp_path / "none.pt"), "--max-robust-drop", "2")
    assert (
        proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    )


def test_batchnorm_recalibration_measures_the_pruned_layer_statistics():
    from robust_compress.search.batchnorm import recalibrate

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    batches = [torch.rand(8, 1, 6, 6) * 3 + 1 for _ in range(3)]
    recalibrate(net, batches)
    with torch.no_grad():
        out = torch.cat([net[0](x) for x in batches])
    assert torch.allclose(net[1].running_mean, out.mean(dim=(0, 2, 3)), atol=1e-5)
    assert not net.training and net[1].momentum == 0.1  # mode and momentum put back
