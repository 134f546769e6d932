import copy

import torch

from robust_compress.attacks.adversaries import TorchPGD, make_adversary
from robust_compress.attacks.torch_attacks import fgsm_rs, frozen_for_attack, pgd_linf
from robust_compress.training.loop import TrainConfig, evaluate, train
from robust_compress.training.optim import lr_factor


def test_frozen_for_attack_restores_mode_and_flags(trained_small):
    model = copy.deepcopy(trained_small).train()
    model.features[0].weight.requires_grad_(False)
    model.head.eval()
    with frozen_for_attack(model):
        assert not model.training
        assert not any(p.requires_grad for p in model.parameters())
    assert model.training and not model.head.training
    assert not model.features[0].weight.requires_grad
    assert model.fc.weight.requires_grad


def test_pgd_stays_in_ball_and_lowers_accuracy(trained_small, synthetic_test):
    x, y = synthetic_test.x, synthetic_test.y
    x_adv = pgd_linf(trained_small, x, y, eps=0.3, step=0.05, steps=10)
    assert (x_adv - x).abs().max() <= 0.3 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    clean = evaluate(trained_small, synthetic_test)
    robust = evaluate(trained_small, synthetic_test, TorchPGD(0.3, steps=10))
    assert clean > 0.9 and robust < clean - 0.3


def test_fgsm_rs_stays_in_ball(trained_small, synthetic_test):
    x, y = synthetic_test.x[:32], synthetic_test.y[:32]
    x_adv = fgsm_rs(trained_small, x, y, eps=0.1)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and not torch.equal(x_adv, x)


def test_attack_leaves_bn_stats_and_grads(trained_small, synthetic_test):
    model = copy.deepcopy(trained_small).train()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    before = copy.deepcopy(model.state_dict())
    pgd_linf(model, synthetic_test.x[:16], synthetic_test.y[:16], 0.1, 0.02, 3)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())
    assert model.training


def test_adversarial_training_beats_natural_under_attack(synthetic_train, synthetic_test):
    from robust_compress.models.specs import build_model

    results = {}
    for method in ("natural", "pgd"):
        torch.manual_seed(0)
        model = build_model("builtin:cnn_small")
        cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05)
        train(model, synthetic_train, cfg, make_adversary(method, 0.25, steps=3))
        results[method] = evaluate(model, synthetic_test, TorchPGD(0.25, steps=10))
    assert results["pgd"] > results["natural"] + 0.2


def test_lr_schedules():
    assert lr_factor("onecycle", 0.0) == 0 and lr_factor("onecycle", 0.2) == 1
    assert lr_factor("onecycle", 1.0) == 0
    assert abs(lr_factor("cosine", 0.5) - 0.5) < 1e-9 and lr_factor("constant", 0.9) == 1
