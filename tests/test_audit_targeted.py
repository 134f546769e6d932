"""Targeted APGD (APGD-T) and the audit's strength profiles.

``MeanModel`` is built so that APGD-T provably adds strength to the untargeted ensemble: its
logits are linear in the image mean (so random starts average out), the true class 0 leads,
class 1 is second and takes almost all of the untargeted gradient but cannot overtake class 0
within eps, and class 2 (far below, with a much steeper slope the other way) overtakes class 0
only when the mean drops by at least 0.098, i.e. almost every pixel moves by -eps (0.1).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robust_compress.attacks.apgd_targeted import ApgdT, dlr_targeted, top_targets
from robust_compress.audit.options import AuditConfig, make_budget
from robust_compress.audit.report import attack_label
from robust_compress.audit.runner import run_audit
from robust_compress.data.datasets import TensorData
from robust_compress.errors import UserError

EPS = 0.1
UNTARGETED = ["fgsm", "pgd", "apgd_ce", "apgd_dlr", "square"]
SMALL = {"pgd_steps": 10, "square_queries": 100, "sanity_checks": False}


class MeanModel(nn.Module):
    """Logits ``slope * (mean(x) - 0.5) + bias``, ten classes (see the module docstring).

    Class 1 at most reaches -0.5 (at mean + eps); class 2 reaches +2 only at mean - eps and
    stays below class 1 until mean - 0.0965. Classes 3-9 sit at -200, so class 2 is the second
    target of APGD-T.
    """

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(1, 10)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[0.0, 5.0, -1000.0] + [0.0] * 7]).T)
            self.head.bias.copy_(torch.tensor([0.0, -1.0, -98.0] + [-200.0] * 7))

    def forward(self, x):
        return self.head(x.flatten(1).mean(1, keepdim=True) - 0.5)


@pytest.fixture(scope="module")
def mean_data() -> TensorData:
    """16 noise images of class 0 whose pixels lie in [0.2, 0.8] with a mean of exactly 0.5."""
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(16, 1, 28, 28, generator=g) * 0.6 - 0.3
    noise -= noise.mean(dim=(1, 2, 3), keepdim=True)
    x = (0.5 + noise).clamp(0.2, 0.8)
    x += 0.5 - x.mean(dim=(1, 2, 3), keepdim=True)
    return TensorData(x, torch.zeros(16, dtype=torch.long), 10, name="mean")


def test_untargeted_attacks_leave_what_apgd_t_breaks(mean_data):
    model = MeanModel().eval()
    assert (model(mean_data.x).argmax(1) == 0).all()
    plain = run_audit(model, mean_data, eps=EPS, attacks=UNTARGETED, **SMALL)
    assert plain["robust"] == 1.0, plain["markdown"]
    both = run_audit(model, mean_data, eps=EPS, attacks=[*UNTARGETED, "apgd_t"], **SMALL)
    assert both["robust"] == 0.0, both["markdown"]
    t = both["per_attack"]["apgd_t"]
    assert t["newly_broken"] == 16 and t["mode"] == "cumulative" and t["attacked"] == 16
    assert list(both["per_attack"]) == [*UNTARGETED[:4], "apgd_t", "square"]
    assert "APGD-T-10 (3 targets)" in both["markdown"] and "strength default" in both["markdown"]


def test_apgd_t_stays_in_the_ball_and_returns_the_clean_input_when_it_fails(mean_data):
    model = MeanModel().eval()
    x, y = mean_data.x, mean_data.y
    adv = ApgdT(EPS, steps=10, targets=1).perturb(model, x, y)  # class 1 only: cannot win
    assert torch.equal(adv, x)
    adv = ApgdT(EPS, steps=10, targets=2).perturb(model, x, y)
    assert (adv - x).abs().max() <= EPS + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert (model(adv).argmax(1) == 2).all()
    adv2 = ApgdT(EPS, norm="l2", steps=10, targets=2).perturb(model, x, y)
    assert (adv2 - x).flatten(1).norm(dim=1).max() <= EPS + 1e-5
    assert model.training is False and model.head.weight.requires_grad


def test_targets_are_the_top_classes_other_than_the_true_one():
    logits = torch.tensor([[5.0, 1.0, 3.0, 2.0, 0.0], [0.0, 4.0, 1.0, 3.0, 2.0]])
    assert top_targets(logits, torch.tensor([0, 3]), 3).tolist() == [[2, 3, 1], [1, 4, 2]]


def test_targeted_dlr_loss_is_scale_invariant_and_zero_at_a_tie():
    logits = torch.tensor([[4.0, 4.0, 1.0, 0.0, -1.0], [6.0, 2.0, 1.0, 0.0, -1.0]])
    y, t = torch.tensor([0, 0]), torch.tensor([1, 1])
    loss = dlr_targeted(logits, y, t)
    assert loss[0] == 0 and loss[1] == pytest.approx(-4 / (6 - 0.5))
    assert torch.allclose(dlr_targeted(logits * 7, y, t), loss)


def test_fewer_than_four_classes_is_a_user_error():
    model = nn.Linear(4, 3)
    with pytest.raises(UserError, match="at least 4 classes"):
        ApgdT(EPS, steps=2).perturb(model, torch.rand(2, 4), torch.tensor([0, 1]))


def test_strength_autoattack_sets_the_standard_budget(mean_data):
    budget = make_budget(mean_data, AuditConfig(eps=EPS, strength="autoattack"))
    assert (budget.apgd_steps, budget.apgd_targets, budget.square_queries) == (100, 9, 5000)
    assert budget.pgd_restarts == 1 and budget.pgd_steps == 20 and budget.strength == "autoattack"
    default = make_budget(mean_data, AuditConfig(eps=EPS))
    assert (default.apgd_steps, default.apgd_targets, default.square_queries) == (20, 3, 300)
    assert default.pgd_restarts == 1 and default.strength == "default"


def test_explicit_values_win_over_the_strength(mean_data):
    config = AuditConfig(
        eps=EPS, strength="autoattack", apgd_steps=7, apgd_targets=2, square_queries=50,
        pgd_restarts=2,
    )  # fmt: skip
    budget = make_budget(mean_data, config)
    assert (budget.apgd_steps, budget.apgd_targets, budget.square_queries) == (7, 2, 50)
    assert budget.pgd_restarts == 2
    assert make_budget(mean_data, AuditConfig(eps=EPS, pgd_steps=9)).apgd_steps == 9


def test_bad_strength_and_targets_are_user_errors(mean_data):
    with pytest.raises(UserError, match="autoattack"):
        make_budget(mean_data, AuditConfig(eps=EPS, strength="autoatack"))
    with pytest.raises(UserError, match="apgd_targets"):
        make_budget(mean_data, AuditConfig(eps=EPS, apgd_targets=0))


def test_recipe_stage_takes_the_strength():
    from robust_compress.stages.audit import STAGE_ONLY
    from robust_compress.stages.configs import AuditStage

    stage = AuditStage.model_validate({"strength": "autoattack", "square_queries": 1000})
    assert "apgd_t" in stage.attacks and stage.apgd_targets is None
    config = AuditConfig(**stage.model_dump(exclude=STAGE_ONLY), eps=EPS)
    assert config.strength == "autoattack" and config.square_queries == 1000
    with pytest.raises(ValueError):
        AuditStage.model_validate({"strength": "strong"})


def test_report_label_names_the_targets():
    entry = {"settings": {"steps": 20, "restarts": 1, "targets": 3}}
    assert attack_label("apgd_t", entry) == "APGD-T-20 (3 targets)"


def test_cli_strength_and_explicit_budgets(tmp_path):
    import json

    from typer.testing import CliRunner

    from robust_compress.cli.main import app
    from robust_compress.models.specs import build_model

    path = tmp_path / "weights.pt"
    torch.save(build_model("builtin:cnn_tiny").state_dict(), path)
    args = [str(path), "--model-spec", "builtin:cnn_tiny", "--data", "synthetic", "--samples"]
    args += ["8", "--attacks", "fgsm,apgd_t", "--no-sanity-checks", "--out", str(tmp_path / "a")]
    args += ["--strength", "autoattack", "--apgd-steps", "2", "--quiet"]
    result = CliRunner().invoke(app, ["audit", *args])
    assert result.exit_code == 0, result.output
    budget = json.loads((tmp_path / "a" / "audit.json").read_text())["budget"]
    assert budget["strength"] == "autoattack" and budget["apgd_steps"] == 2
    assert budget["apgd_targets"] == 9 and budget["square_queries"] == 5000
    bad = CliRunner().invoke(app, ["audit", *args, "--strength", "strong"])  # the last one wins
    assert bad.exit_code == 2 and "autoattack" in bad.output
