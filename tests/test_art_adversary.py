"""ArtAdversary: state preservation, attack strength, eps-ball, rebinding, reproducibility."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
from torch import nn

from robust_compress.adapters.art.adversary import ATTACKS, ArtAdversary, black_box_attack
from robust_compress.adapters.art.pgd import documented_pgd
from robust_compress.adapters.art.state import seeded_rngs
from robust_compress.attacks.torch_attacks import correct, pgd_linf
from robust_compress.data.datasets import load_dataset
from robust_compress.errors import UserError
from robust_compress.protocols import Adversary
from robust_compress.training.loop import TrainConfig, train

FAST = {"queries": 50, "steps": 5}  # small budgets keep every case well under a second
NORM_EPS = [("linf", 0.1), ("l2", 2.0)]


def tiny_net() -> nn.Sequential:
    """A top-level Sequential with BatchNorm (ART wraps Sequentials differently)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread avoids contention on a shared machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    torch.manual_seed(0)
    model = tiny_net()
    train(model, load_dataset("synthetic", "train"), TrainConfig(epochs=4, batch_size=32, lr=0.05))
    return model.eval()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    test = load_dataset("synthetic", "test")
    return test.x[:64], test.y[:64]


def fresh(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return correct(model, x, y).float().mean().item()


def snapshot(model: nn.Module) -> dict:
    return {
        "modes": {n: m.training for n, m in model.named_modules()},
        "grads": {n: p.grad for n, p in model.named_parameters()},
        "grad_values": {
            n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()
        },
        "flags": {n: p.requires_grad for n, p in model.named_parameters()},
        "params": {n: p for n, p in model.named_parameters()},
        "state": {k: v.clone() for k, v in model.state_dict().items()},
    }


def assert_same_state(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["modes"] == before["modes"]
    assert after["flags"] == before["flags"]
    for name, p in after["params"].items():
        assert p is before["params"][name], f"parameter {name} was replaced"
        assert after["grads"][name] is before["grads"][name], f"{name}.grad object changed"
        old = before["grad_values"][name]
        assert (old is None) == (p.grad is None), f"{name}.grad None-ness changed"
        if old is not None:
            assert torch.equal(p.grad, old), f"{name}.grad values changed"
    for key, value in before["state"].items():  # weights and BatchNorm buffers
        assert torch.equal(model.state_dict()[key], value), f"{key} changed"


def prepare_state(model: nn.Module, top_train: bool) -> None:
    """Known, awkward state: mixed modes, known grads, one None grad, one frozen parameter."""
    model.train(top_train)
    model[1].train(not top_train)  # a BatchNorm in the other mode
    gen = torch.Generator().manual_seed(1)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen)
    model[8].bias.grad = None
    model[0].bias.requires_grad_(False)


@pytest.mark.parametrize("top_train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("attack", ATTACKS)
def test_model_state_unchanged(trained, batch, attack, top_train):
    model = fresh(trained)
    prepare_state(model, top_train)
    before = snapshot(model)
    x, y = batch
    x_copy = x.clone()
    ArtAdversary(attack, 0.1, **FAST).perturb(model, x, y)
    assert_same_state(model, before)
    assert torch.equal(x, x_copy), "the input batch was modified in place"


def test_global_rngs_unchanged(trained, batch):
    np_state, py_state = np.random.get_state(), random.getstate()
    torch_state = torch.get_rng_state()
    ArtAdversary("pgd", 0.1, **FAST).perturb(trained, *batch)
    ArtAdversary("square", 0.1, norm="l2", **FAST).perturb(trained, *batch)
    assert random.getstate() == py_state
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1])
    assert after[2:] == np_state[2:]


@pytest.mark.parametrize(("norm", "eps"), NORM_EPS)
@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_lowers_accuracy_within_ball(trained, batch, attack, norm, eps):
    x, y = batch
    clean = accuracy(trained, x, y)
    assert clean > 0.9
    x_adv = ArtAdversary(attack, eps, norm=norm, **FAST).perturb(trained, x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert accuracy(trained, x_adv, y) < clean - 0.05
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    delta = (x_adv - x).flatten(1)
    dist = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert dist.max() <= eps * (1 + 1e-5)


def test_black_box_attack_on_a_predict_function(trained, batch):
    x, y = batch
    x_adv = black_box_attack(lambda b: trained(b).numpy(), x, y, 0.1, queries=50)
    assert accuracy(trained, x_adv, y) < accuracy(trained, x, y) - 0.05
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    again = black_box_attack(lambda b: trained(b), x, y, 0.1, queries=50)
    assert torch.equal(x_adv, again)


def test_art_pgd_as_strong_as_plain_pgd(trained):
    test = load_dataset("synthetic", "test")
    x, y = test.x, test.y
    gen = torch.Generator().manual_seed(0)
    plain = accuracy(trained, pgd_linf(trained, x, y, 0.1, 0.025, 10, True, gen), y)
    art = accuracy(trained, ArtAdversary("pgd", 0.1, steps=10).perturb(trained, x, y), y)
    assert art <= plain + 0.04


@pytest.mark.parametrize(("norm", "eps"), NORM_EPS)
def test_fast_pgd_path_matches_arts_own_generate(trained, batch, norm, eps):
    """The tensor fast path skips only overhead: same result as ART's documented generate()."""
    x, y = batch
    model = fresh(trained)
    step = eps / 5
    call_seed = int(np.random.default_rng(3).integers(2**31))  # ArtAdversary's first draw
    with seeded_rngs(call_seed):
        reference = documented_pgd(model, (1, 28, 28), 10, eps, step, 5, norm=norm)(x, y)
    model.eval()
    ours = ArtAdversary("pgd", eps, norm=norm, step=step, steps=5, seed=3).perturb(model, x, y)
    assert not torch.equal(reference, x)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("attack", ATTACKS)
def test_same_seed_same_output(trained, batch, attack):
    x, y = batch
    out = [ArtAdversary(attack, 0.1, seed=s, **FAST).perturb(trained, x, y) for s in (7, 7, 8)]
    assert torch.equal(out[0], out[1])
    if attack != "fgsm":  # every other attack starts at random
        assert not torch.equal(out[0], out[2])


def test_successive_calls_draw_new_random_starts(trained, batch):
    adv = ArtAdversary("pgd", 0.1, **FAST)
    assert not torch.equal(adv.perturb(trained, *batch), adv.perturb(trained, *batch))


def test_labels_are_used_not_predictions(trained, batch):
    x, y = batch
    a = ArtAdversary("pgd", 0.1, **FAST).perturb(trained, x, y)
    b = ArtAdversary("pgd", 0.1, **FAST).perturb(trained, x, (y + 1) % 10)
    assert not torch.equal(a, b)


def test_works_inside_no_grad(trained, batch):
    expected = ArtAdversary("pgd", 0.1, **FAST).perturb(trained, *batch)
    with torch.no_grad():
        got = ArtAdversary("pgd", 0.1, **FAST).perturb(trained, *batch)
    assert torch.equal(got, expected)


def test_is_an_adversary():
    assert isinstance(ArtAdversary("pgd", 0.1), Adversary)


def _prune_first_conv(model: nn.Sequential, keep: int) -> None:
    """Simulate structured pruning: new, smaller layer objects replace the old ones."""
    conv, bn, nxt = model[0], model[1], model[3]
    new_conv = nn.Conv2d(1, keep, 3, 2, 1)
    new_bn = nn.BatchNorm2d(keep)
    new_next = nn.Conv2d(keep, nxt.out_channels, 3, 2, 1)
    with torch.no_grad():
        new_conv.weight.copy_(conv.weight[:keep])
        new_conv.bias.copy_(conv.bias[:keep])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new_bn, name).copy_(getattr(bn, name)[:keep])
        new_next.weight.copy_(nxt.weight[:, :keep])
        new_next.bias.copy_(nxt.bias)
    model[0], model[1], model[3] = new_conv, new_bn, new_next


def _second_call(model, x, y, seed=5):
    """Output of a new adversary's second call (the same random draws as a reused one's)."""
    adv = ArtAdversary("pgd", 0.1, seed=seed, **FAST)
    adv.perturb(model, x, y)
    return adv.perturb(model, x, y)


def test_rebinds_after_layers_are_replaced(trained, batch):
    x, y = batch
    model = fresh(trained)
    adv = ArtAdversary("pgd", 0.1, seed=5, **FAST)
    adv.perturb(model, x, y)
    first = adv._binding
    _prune_first_conv(model, keep=4)
    out = adv.perturb(model, x, y)
    assert adv._binding is not first
    assert all(a is b for a, b in zip(adv._binding.params, model.parameters(), strict=True))
    assert torch.equal(out, _second_call(model, x, y))


def test_rebinds_to_a_new_module_and_back(trained, batch):
    x, y = batch
    model, other = fresh(trained), fresh(trained)
    _prune_first_conv(other, keep=6)
    adv = ArtAdversary("apgd_ce", 0.1, **FAST)
    adv.perturb(model, x, y)
    adv.perturb(other, x, y)
    assert adv._binding.model is other
    adv.perturb(model, x, y)
    assert adv._binding.model is model


def test_reuses_binding_and_sees_in_place_weight_updates(trained, batch):
    x, y = batch
    model = fresh(trained)
    adv = ArtAdversary("pgd", 0.1, seed=5, **FAST)
    adv.perturb(model, x, y)
    bound = adv._binding
    with torch.no_grad():  # a training step changes the weights in place
        for p in model.parameters():
            p.mul_(0.9)
    out = adv.perturb(model, x, y)
    assert adv._binding is bound
    assert torch.equal(out, _second_call(model, x, y))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attack": "pgdd", "eps": 0.1}, "Did you mean: pgd"),
        ({"attack": "apgd", "eps": 0.1}, "apgd_ce"),
        ({"attack": "pgd", "eps": 0.1, "norm": "L2"}, "l2"),
        ({"attack": "pgd", "eps": 0.0}, "eps must be a positive"),
        ({"attack": "pgd", "eps": float("nan")}, "eps must be a positive"),
        ({"attack": "pgd", "eps": 8}, "pixel space"),
        ({"attack": "fgsm", "eps": 0.1, "step": 0.05}, "takes no step"),
        ({"attack": "square", "eps": 0.1, "step": 0.05}, "takes no step"),
        ({"attack": "pgd", "eps": 0.1, "step": -1.0}, "step must be"),
        ({"attack": "pgd", "eps": 0.1, "steps": 0}, "steps must be"),
        ({"attack": "pgd", "eps": 0.1, "restarts": 0}, "restarts must be"),
        ({"attack": "fgsm", "eps": 0.1, "restarts": 2}, "restarts must be 1"),
    ],
)
def test_bad_configuration_is_a_user_error(kwargs, match):
    with pytest.raises(UserError, match=match):
        ArtAdversary(**kwargs)


def test_bad_inputs_are_user_errors(trained, batch):
    x, y = batch
    adv = ArtAdversary("pgd", 0.1, **FAST)
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        adv.perturb(trained, x * 255, y)
    with pytest.raises(UserError, match="labels must be"):
        adv.perturb(trained, x, y + 10)
    with pytest.raises(UserError, match="integer tensor"):
        adv.perturb(trained, x, y.float())
    with pytest.raises(UserError, match="3 classes"):
        binary = nn.Sequential(nn.Flatten(), nn.Linear(784, 2))
        ArtAdversary("apgd_dlr", 0.1).perturb(binary, x, y % 2)
    with pytest.raises(UserError, match="expected logits"):
        black_box_attack(lambda b: trained(b)[:, :5], x, y % 5, 0.1, queries=5, num_classes=10)


def test_empty_batch(trained):
    x, y = torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long)
    assert ArtAdversary("pgd", 0.1).perturb(trained, x, y).shape == x.shape
