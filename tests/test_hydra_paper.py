"""HYDRA as in its paper and official code (issue 20): what the score learning must do.

Each test failed on the code before the fix (the note of issue 20 gives the failure).
"""

import copy

import pytest
import torch
from torch import nn

from robust_compress.adapters.torch_pruning.pruner import StructuredPruner
from robust_compress.attacks.adversaries import TorchPGD
from robust_compress.data.datasets import load_dataset
from robust_compress.models.specs import build_model
from robust_compress.pruning import hydra, masks


def _trained_like(spec: str = "builtin:cnn_tiny") -> nn.Module:
    """A model whose BatchNorm scales and shifts differ per channel, as after training."""
    torch.manual_seed(0)
    model = build_model(spec)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.05, 2.0)
                m.bias.uniform_(-0.5, 0.5)
    return model


def _learn(model: nn.Module, epochs: int, ratio: float = 0.5, **how):
    data = load_dataset("synthetic", "train", subset=128)
    adversary = TorchPGD(eps=0.1, steps=1, generator=torch.Generator().manual_seed(0))
    spec = hydra.ScoreLearning(
        form="structured", ratio=ratio, epochs=epochs, lr=0.1, batch_size=64, seed=0, **how
    )
    return hydra.learn_scores(model, data, spec, head="head", adversary=adversary)


def test_dropped_channels_receive_score_gradients(monkeypatch):
    model = _trained_like()
    first: dict = {}
    init = hydra.init_scores

    def recording(*args, **kwargs):
        scores = init(*args, **kwargs)
        for m, s in scores.items():
            first[m] = {"mask": masks.topk_mask(s.detach(), 0.5) > 0}
            s.register_hook(lambda g, m=m: first[m].setdefault("grad", g.clone()))
        return scores

    monkeypatch.setattr(hydra, "init_scores", recording)
    _learn(model, epochs=1)
    for m, seen in first.items():
        dropped = seen["grad"][~seen["mask"]]
        moved = int((dropped != 0).sum())
        assert moved == len(dropped), f"{type(m).__name__}: {moved}/{len(dropped)} dropped moved"


def test_initial_scores_rank_channels_as_torch_pruning_group_l1():
    model = _trained_like()
    by_l1 = copy.deepcopy(model)
    layers, scores = _learn(model, epochs=0)
    assert set(layers) == {"features.0", "features.3", "features.6", "fc"}
    example = torch.zeros(1, 1, 28, 28)
    for m, kwargs in ((model, {"scores": scores}), (by_l1, {})):
        pruner = StructuredPruner("l1", 0.5, 1, **kwargs)
        pruner.prepare(m, example)
        pruner.step()
    for (name, a), b in zip(model.state_dict().items(), by_l1.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_batchnorm_affine_learns_with_the_scores_and_weights_stay_frozen():
    model = _trained_like()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    _learn(model, epochs=1)
    bn = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    for name, p in model.named_parameters():
        owner = name.rsplit(".", 1)[0]
        assert p.requires_grad, name
        if owner in bn:
            assert not torch.equal(p, before[name]), f"{name} was not trained"
        else:
            assert torch.equal(p, before[name]), f"{name} changed"


def test_batchnorm_affine_can_stay_frozen():
    model = _trained_like()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    _learn(model, epochs=1, train_bn=False)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name


@pytest.mark.parametrize("ratio", [0.5, 0.9, 0.97, 0.99])
def test_mask_and_pruned_model_agree(ratio):
    model = _trained_like("builtin:cnn_small")
    layers, scores = _learn(model, epochs=0, ratio=ratio)
    wanted = {n: int((masks.topk_mask(scores[m], ratio) > 0).sum()) for n, m in layers.items()}
    pruner = StructuredPruner("l1", ratio, 1, scores=scores)
    pruner.prepare(model, torch.zeros(1, 1, 28, 28))
    pruner.step()
    modules = dict(model.named_modules())
    got = {n: modules[n].weight.shape[0] for n in layers}
    assert got == wanted
