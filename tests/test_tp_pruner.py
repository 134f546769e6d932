"""Tests of the Torch-Pruning adapter (structured channel pruning)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robust_compress.adapters.torch_pruning.pruner import (
    StructuredPruner,
    count_macs_params,
    load_pruned,
    pruned_state,
    restore_pruned,
    save_pruned,
)
from robust_compress.attacks.adversaries import TorchPGD
from robust_compress.data.datasets import load_dataset
from robust_compress.errors import CheckpointError, UserError
from robust_compress.models.specs import build_model
from robust_compress.protocols import Pruner
from robust_compress.pruning.registry import IMPORTANCE

SMALL_X = torch.zeros(1, 1, 28, 28)
TV_X = torch.zeros(1, 3, 32, 32)
TINY_X = SMALL_X
CONVS = ("features.0", "features.3", "features.6")
CRITERIA = ("l1", "l2", "taylor", "robust_taylor", "bn_scale", "lamp", "random")


def small() -> nn.Module:
    return build_model("builtin:cnn_small")


def tv(name: str) -> nn.Module:
    return build_model(f"torchvision:{name}", num_classes=10, in_channels=3)


def synthetic_batches(n_batches: int = 2, size: int = 8, shape=(1, 28, 28)):
    gen = torch.Generator().manual_seed(1)
    data = [
        (torch.rand(size, *shape, generator=gen), torch.randint(0, 10, (size,), generator=gen))
        for _ in range(n_batches)
    ]
    return lambda: iter(data)


def out_channels(model: nn.Module) -> dict[str, int]:
    return {
        n: m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    }


def prune(model: nn.Module, x: torch.Tensor, **kwargs) -> StructuredPruner:
    pruner = StructuredPruner(**kwargs)
    pruner.prepare(model, x)
    while not pruner.done:
        assert pruner.step() is True
    return pruner


def assert_shrunk(model: nn.Module, pruner: StructuredPruner, x: torch.Tensor) -> dict:
    report = pruner.report()
    assert report["params_after"] < report["params_before"]
    assert report["macs_after"] < report["macs_before"]
    assert report["params_after"] == sum(p.numel() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(2, *x.shape[1:])).shape == (2, 10)
    return report


def test_satisfies_the_pruner_protocol():
    assert isinstance(StructuredPruner(), Pruner)
    assert set(CRITERIA) <= set(IMPORTANCE.names())
    facts = {name: IMPORTANCE.entry(name).meta for name in CRITERIA}
    assert [n for n in CRITERIA if facts[n].get("magnitude")] == ["l1", "l2", "lamp"]
    assert [n for n in CRITERIA if facts[n].get("gradients")] == ["taylor", "robust_taylor"]
    assert [n for n in CRITERIA if facts[n].get("needs_adversary")] == ["robust_taylor"]


def test_cnn_small_half_ratio_cuts_macs_and_keeps_the_head():
    model = small()
    pruner = prune(model, SMALL_X, importance="l1", ratio=0.5)
    report = assert_shrunk(model, pruner, SMALL_X)
    assert report["macs_after"] <= report["macs_before"] / 2.5
    assert report["ignored"] == ["head"]
    chans = out_channels(model)
    assert [chans[n] for n in CONVS] == [16, 32, 32]
    assert chans["head"] == 10


def test_resnet18_prunes_and_round_trips_through_a_file(tmp_path):
    model = tv("resnet18")
    pruner = prune(model, TV_X, importance="l2", ratio=0.5)
    report = assert_shrunk(model, pruner, TV_X)
    assert report["ignored"] == ["fc"]
    assert model.fc.out_features == 10
    save_pruned(model, tmp_path / "r18.pt")
    restored = load_pruned(tv("resnet18"), tmp_path / "r18.pt").eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), restored(x))


@pytest.mark.parametrize("name", ["mobilenet_v2", pytest.param("vgg11_bn", marks=pytest.mark.slow)])
def test_torchvision_models_prune(name):
    model = tv(name)
    assert_shrunk(model, prune(model, TV_X, ratio=0.5), TV_X)


def test_cnn_small_round_trips_exactly_in_file_and_memory(tmp_path):
    model = small()
    prune(model, SMALL_X, ratio=0.5, steps=2)
    save_pruned(model, tmp_path / "small.pt")
    plain = torch.load(tmp_path / "small.pt", weights_only=True)  # plain data only
    assert plain["history"] and plain["input_shape"] == [1, 1, 28, 28]
    from_file = load_pruned(small(), tmp_path / "small.pt").eval()
    from_memory = restore_pruned(small(), pruned_state(model)).eval()
    again = restore_pruned(small(), pruned_state(from_memory)).eval()  # history travels on
    model.eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        for other in (from_file, from_memory, again):
            assert torch.equal(model(x), other(x))


def test_two_pruning_rounds_restore_as_one_history():
    model = small()
    prune(model, SMALL_X, ratio=0.25)
    prune(model, SMALL_X, ratio=0.5)  # a second stage on the pruned model
    assert out_channels(model)["features.0"] == 12
    restored = restore_pruned(small(), pruned_state(model)).eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), restored(x))


def test_restoring_into_the_wrong_model_is_a_checkpoint_error(tmp_path):
    model = small()
    prune(model, SMALL_X, ratio=0.5)
    save_pruned(model, tmp_path / "small.pt")
    with pytest.raises(CheckpointError):
        load_pruned(build_model("builtin:cnn_tiny"), tmp_path / "small.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pruned(small(), tmp_path / "missing.pt")


class CountingPGD(TorchPGD):
    calls = 0

    def perturb(self, model, x, y):
        type(self).calls += 1
        return super().perturb(model, x, y)


@pytest.mark.parametrize("importance", CRITERIA)
def test_each_importance_prunes(importance):
    model = small()
    kwargs = {"batches": synthetic_batches(3), "grad_batches": 2}
    if importance == "robust_taylor":
        CountingPGD.calls = 0
        kwargs["adversary"] = CountingPGD(0.1, steps=2)
    pruner = prune(model, SMALL_X, importance=importance, ratio=0.5, **kwargs)
    report = assert_shrunk(model, pruner, SMALL_X)
    assert report["importance"] == importance
    if importance == "robust_taylor":
        assert CountingPGD.calls == 2  # one attack per gradient batch


def kept_channels(importance: str, **kwargs) -> list:
    model = small()
    prune(model, SMALL_X, importance=importance, ratio=0.5, batches=synthetic_batches(), **kwargs)
    return pruned_state(model)["history"]


def test_robust_taylor_differs_from_taylor_and_keeps_caller_grads():
    adversary = TorchPGD(0.1, steps=2)
    assert kept_channels("taylor") != kept_channels("robust_taylor", adversary=adversary)
    model = small()
    model.head.bias.grad = torch.full_like(model.head.bias, 7.0)
    pruner = StructuredPruner("taylor", 0.5, batches=synthetic_batches())
    pruner.prepare(model, SMALL_X)
    pruner.step()
    assert torch.equal(model.head.bias.grad, torch.full((10,), 7.0))
    assert model.features[0].weight.grad is None


def test_iterative_steps_reach_the_ratio():
    model = small()
    pruner = StructuredPruner("l1", 0.5, steps=3)
    pruner.prepare(model, SMALL_X)
    widths = []
    for _ in range(3):
        assert not pruner.done
        assert pruner.step() is True
        widths.append(model.features[0].out_channels)
    assert pruner.done and widths == [26, 21, 16]
    assert pruner.step() is False
    assert pruner.report()["steps_taken"] == 3


def test_ignored_layers_by_name_and_pattern_keep_their_channels():
    model = small()
    pruner = prune(model, SMALL_X, ignore=["features.0", r"re:features\.[6]|fc"], ratio=0.5)
    assert pruner.report()["ignored"] == ["features.0", "features.6", "fc", "head"]
    chans = out_channels(model)
    assert (chans["features.0"], chans["features.3"], chans["features.6"]) == (32, 32, 64)
    assert chans["fc"] == 128


def test_unmatched_pattern_and_unknown_importance_are_user_errors():
    with pytest.raises(UserError, match=r"'feature\.3'.*features\.3"):
        StructuredPruner(ignore=["feature.3"]).prepare(small(), SMALL_X)
    with pytest.raises(UserError, match=r"'re:layer1'.*whole name"):
        StructuredPruner(ignore=["re:layer1"]).resolve_ignored(small())
    with pytest.raises(UserError, match="taylor"):
        StructuredPruner("taylr")
    with pytest.raises(UserError, match="needs an adversary"):
        StructuredPruner("robust_taylor", batches=synthetic_batches())
    with pytest.raises(UserError, match="needs batches"):
        StructuredPruner("taylor")
    with pytest.raises(UserError, match="ratio"):
        StructuredPruner(ratio=1.0)
    with pytest.raises(UserError, match="prepare"):
        StructuredPruner().step()


def test_a_registered_criterion_is_used_by_the_pruner():
    import torch_pruning as tp

    from robust_compress.adapters.torch_pruning.importance import StoredGradTaylorImportance

    seeds = []

    def build_l1(seed):
        seeds.append(seed)
        return tp.importance.MagnitudeImportance(p=1)

    IMPORTANCE.add("plugin_l1", build_l1, magnitude=True)
    IMPORTANCE.add("plugin_taylor", lambda seed: StoredGradTaylorImportance(), gradients=True)

    def kept_on_one_model(importance: str, **kwargs) -> list:
        torch.manual_seed(0)
        return kept_channels(importance, **kwargs)

    try:
        assert kept_on_one_model("plugin_l1", seed=5) == kept_on_one_model("l1") and seeds == [5]
        assert kept_on_one_model("plugin_taylor") == kept_on_one_model("taylor")
    finally:
        IMPORTANCE.remove("plugin_l1")
        IMPORTANCE.remove("plugin_taylor")
    with pytest.raises(UserError, match="unknown importance criterion 'plugin_l1'"):
        StructuredPruner("plugin_l1")


def test_modes_are_restored():
    model = small().train()
    model.features[1].eval()  # a mixed state must come back as it was
    modes = {n: m.training for n, m in model.named_modules()}
    pruner = StructuredPruner("l1", 0.5)
    pruner.prepare(model, SMALL_X)
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert pruner.step() is True
    assert {n: m.training for n, m in model.named_modules()} == modes


def test_frozen_layers_are_pruned_and_stay_frozen(tmp_path):
    model = small()
    for name in ("features.0", "features.3"):  # a leading frozen layer is invisible to tracing
        model.get_submodule(name).weight.requires_grad_(False)
    prune(model, SMALL_X, ratio=0.5)
    assert [out_channels(model)[n] for n in CONVS] == [16, 32, 32]
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    assert not flags["features.0.weight"] and not flags["features.3.weight"]
    assert flags["features.6.weight"] and flags["features.1.weight"]
    restored = restore_pruned(small(), pruned_state(model))
    assert out_channels(restored) == out_channels(model)


def test_global_pruning_and_round_to():
    model = small()
    prune(model, SMALL_X, ratio=0.3, round_to=8)
    assert all(out_channels(model)[n] % 8 == 0 for n in CONVS)
    model = small()
    prune(model, SMALL_X, ratio=0.5, global_pruning=True)
    before, after = out_channels(small()), out_channels(model)
    pruned = [n for n in before if n != "head"]
    assert sum(after[n] for n in pruned) <= 0.55 * sum(before[n] for n in pruned)


def test_count_macs_params_leaves_the_model_alone():
    model = small().train()
    state = copy.deepcopy(model.state_dict())
    macs, params = count_macs_params(model, SMALL_X)
    assert isinstance(macs, int) and macs > 1_000_000
    assert params == sum(p.numel() for p in model.parameters())
    assert model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


# Robust sparse training: group-norm regularisation before pruning (sparsity_reg).

PRUNABLE = ("features.0", "features.3", "features.6", "fc")


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return build_model("builtin:cnn_tiny")


def channel_norms(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: model.get_submodule(n).weight.detach().flatten(1).norm(dim=1) for n in PRUNABLE}


def sgd(model: nn.Module, pruner: StructuredPruner | None = None, steps=8, adversary=None):
    data = load_dataset("synthetic", "train", subset=128)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for i in range(steps):
        x, y = data.x[i * 32 % 128 :][:32], data.y[i * 32 % 128 :][:32]
        if adversary is not None:
            x = adversary.perturb(model, x, y).detach()
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        if pruner is not None:
            pruner.regularize()
        optimizer.step()


def test_regularize_shrinks_prunable_channels_weakest_most():
    start = tiny()
    plain, sparse = copy.deepcopy(start), copy.deepcopy(start)
    sgd(plain)
    pruner = StructuredPruner("l1", 0.5, sparsity_reg=0.05)
    pruner.prepare(sparse, TINY_X)
    sgd(sparse, pruner)
    before, without, with_reg = channel_norms(start), channel_norms(plain), channel_norms(sparse)
    for name in PRUNABLE:
        assert with_reg[name].sum() < 0.95 * without[name].sum(), name
        weak = before[name].argsort()[: len(before[name]) // 2]  # penalised up to 16x harder
        strong = before[name].argsort()[len(before[name]) // 2 :]
        shrink = with_reg[name] / without[name]
        assert shrink[weak].mean() < shrink[strong].mean(), name


def test_regularised_training_then_pruning_reaches_the_ratio_and_keeps_regularizing():
    model = tiny()
    pruner = StructuredPruner("l2", 0.5, steps=2, sparsity_reg=1e-2)
    pruner.prepare(model, TINY_X)
    sgd(model, pruner, steps=2, adversary=TorchPGD(0.1, steps=2))
    assert pruner.step() is True
    sgd(model, pruner, steps=2)  # the regulariser's groups follow the pruned shapes
    assert pruner.step() is True and pruner.done
    plain = tiny()
    prune(plain, TINY_X, importance="l2", ratio=0.5, steps=2)
    report = assert_shrunk(model, pruner, TINY_X)
    assert out_channels(model) == out_channels(plain)
    assert report["macs_after"] == count_macs_params(plain, TINY_X)[0]
    assert report["sparsity_reg"] == 1e-2
    sgd(model, pruner, steps=1)  # still works after the last step
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_tied_group_is_skipped_not_filled_with_nan():
    model = tiny()
    for i in (0, 3):  # every channel of the first group scores alike: gamma would be 0/0
        model.features[i].weight.data.fill_(0.1)
    pruner = StructuredPruner("l1", 0.5, sparsity_reg=0.05)
    pruner.prepare(model, TINY_X)
    F.cross_entropy(model(torch.rand(4, 1, 28, 28)), torch.arange(4)).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    pruner.regularize()
    after = {n: p.grad for n, p in model.named_parameters()}
    assert all(torch.isfinite(g).all() for g in after.values())
    assert torch.equal(after["features.0.weight"], grads["features.0.weight"])
    assert not torch.equal(after["features.3.weight"], grads["features.3.weight"])


def test_sparsity_reg_misuse_is_a_user_error():
    for bad in (-1e-4, float("nan"), float("inf"), "much"):
        with pytest.raises(UserError, match="sparsity_reg must be"):
            StructuredPruner(sparsity_reg=bad)
    for importance in ("taylor", "bn_scale", "random"):
        with pytest.raises(UserError, match="l1, l2, lamp"):
            StructuredPruner(importance, sparsity_reg=1e-4, batches=synthetic_batches())
    with pytest.raises(UserError, match="HYDRA"):
        StructuredPruner(sparsity_reg=1e-4, scores={})
    with pytest.raises(UserError, match="before regularize"):
        StructuredPruner(sparsity_reg=1e-4).regularize()
    pruner = StructuredPruner()
    pruner.prepare(tiny(), TINY_X)
    with pytest.raises(UserError, match="sparsity_reg > 0"):
        pruner.regularize()
    assert pruner.report()["sparsity_reg"] == 0.0
    pruner = StructuredPruner("lamp", sparsity_reg=1e-4)
    pruner.prepare(tiny(), TINY_X)
    with pytest.raises(UserError, match="after loss.backward"):
        pruner.regularize()


def test_regularize_leaves_modes_flags_and_weights_alone():
    model = tiny().train()
    model.features[1].eval()
    model.features[0].weight.requires_grad_(False)
    modes = {n: m.training for n, m in model.named_modules()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    pruner = StructuredPruner("l1", 0.5, sparsity_reg=1e-2)
    pruner.prepare(model, TINY_X)
    F.cross_entropy(model(torch.rand(4, 1, 28, 28)), torch.arange(4)).backward()
    state = copy.deepcopy(model.state_dict())
    pruner.regularize()
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert model.features[0].weight.grad is None
