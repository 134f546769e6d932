import pytest
import torch
from torch import nn

from robust_compress.adapters.torch_pruning.pruner import StructuredPruner, count_macs_params
from robust_compress.attacks.adversaries import TorchPGD
from robust_compress.data.datasets import load_dataset
from robust_compress.engine.session import Session
from robust_compress.models.specs import build_model
from robust_compress.pruning import hydra, masks
from robust_compress.recipe.loader import parse_recipe

RECIPE = """
name: hydra
seed: 0
model: {{spec: builtin:cnn_tiny}}
data: {{name: synthetic, batch_size: 64, train_subset: 128, test_subset: 64}}
threat: {{norm: linf, eps: 0.1}}
stages:
  - train: {{method: pgd, epochs: 1, adversary: {{attack: pgd, steps: 1}}}}
  - prune: {{method: hydra, hydra_form: {form}, ratio: 0.5, score_epochs: 1,
             finetune_epochs: 1, adversary: {{attack: pgd, steps: 1}}}}
{export}"""


def _hooks(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + ("forward" in m.__dict__)
        for m in model.modules()
    )


def _run(form: str, tmp_path) -> Session:
    export = "  - export: {fp32: true, int8: false}\n" if form == "structured" else ""
    session = Session(parse_recipe(RECIPE.format(form=form, export=export)), tmp_path / form)
    session.setup()
    session.run()
    return session


def test_structured_hydra_shrinks_the_model(tmp_path):
    session = _run("structured", tmp_path)
    example = session.example()
    dense_macs, _ = count_macs_params(session.dense_model(), example)
    macs, _ = count_macs_params(session.model, example)
    assert macs <= dense_macs / 2.5
    assert session.results["prune"]["importance"] == "hydra"
    assert session.results["prune"]["hydra"]["form"] == "structured"
    x = session.train_data.x[:8]
    out = session.model(x)
    assert out.shape == (8, session.num_classes) and torch.isfinite(out).all()
    assert _hooks(session.model) == 0 and not session.model.training
    assert (tmp_path / "structured" / "model.onnx").is_file()


def test_unstructured_hydra_keeps_pruned_weights_zero(tmp_path):
    session = _run("unstructured", tmp_path)
    layers = masks.prunable_layers(session.model, "head")
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    total = sum(m.weight.numel() for m in layers.values())
    assert abs(zeros / total - 0.5) < 0.02
    assert abs(session.results["prune"]["hydra"]["sparsity"] - zeros / total) < 1e-9
    assert session.results["prune"]["hydra"]["form"] == "unstructured"
    assert session.model.head.weight.ne(0).all()  # the head is never pruned
    assert _hooks(session.model) == 0
    assert all(not hasattr(m, "_hydra_mask") for m in session.model.modules())


def _learn(form: str, model: nn.Module, epochs: int = 1):
    data = load_dataset("synthetic", "train", subset=128)
    adversary = TorchPGD(eps=0.1, steps=1, generator=torch.Generator().manual_seed(0))
    how = hydra.ScoreLearning(form=form, ratio=0.5, epochs=epochs, lr=0.5, batch_size=64, seed=0)
    return hydra.learn_scores(model, data, how, head="head", adversary=adversary)


@pytest.mark.parametrize("form", ["structured", "unstructured"])
def test_scores_learn_and_weights_stay_frozen(form):
    torch.manual_seed(0)
    model = build_model("builtin:cnn_tiny")
    before = {k: v.clone() for k, v in model.named_parameters()}
    example = torch.rand(2, 1, 28, 28)
    init_model = build_model("builtin:cnn_tiny")
    init_model.load_state_dict(model.state_dict())
    layers, scores = _learn(form, model)
    init_layers = masks.prunable_layers(init_model, "head")
    init_scores = hydra.init_scores(init_layers, form, model=init_model, example=example)
    init = {layers[n]: init_scores[m] for n, m in init_layers.items()}
    changed = [not torch.allclose(scores[m], init[m]) for m in layers.values()]
    assert all(changed)
    if form == "structured":  # the learned ranking is not plain L1 in some layer
        kept = [
            set(masks.topk_mask(s, 0.5).nonzero().flatten().tolist())
            != set(masks.topk_mask(init[m], 0.5).nonzero().flatten().tolist())
            for m, s in scores.items()
        ]
        assert any(kept)
    bn = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    for k, v in model.named_parameters():  # BatchNorm's scale and shift learn with the scores
        assert torch.equal(v, before[k]) != (k.rsplit(".", 1)[0] in bn), k
        assert v.requires_grad
    assert _hooks(model) == 0


def test_topk_mask_passes_gradients_straight_through():
    s = torch.tensor([0.3, -0.9, 0.1, 0.5], requires_grad=True)
    mask = masks.topk_mask(s, 0.5)
    assert mask.tolist() == [0.0, 1.0, 0.0, 1.0]
    (mask * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert s.grad.tolist() == [1.0, -2.0, 3.0, 4.0]  # the gradient of |s|: -0.9 grows in size


def test_pruner_keeps_the_channels_with_the_highest_scores():
    torch.manual_seed(0)
    model = build_model("builtin:cnn_tiny")
    conv = model.features[0]
    n = conv.out_channels
    # give high scores to the channels of smallest L1 norm: plain l1 would remove them
    order = conv.weight.detach().abs().flatten(1).sum(1).argsort()
    scores = {conv: torch.zeros(n)}
    scores[conv][order[: n // 2]] = 1.0
    kept_weights = conv.weight.detach()[order[: n // 2]].clone()
    pruner = StructuredPruner("l1", 0.5, 1, scores=scores)
    pruner.prepare(model, torch.zeros(1, 1, 28, 28))
    pruner.step()
    assert model.features[0].out_channels == n // 2
    kept = model.features[0].weight.detach()
    for w in kept_weights:
        assert any(torch.equal(w, k) for k in kept)


def test_structured_mask_zeroes_channels_after_the_relu():
    torch.manual_seed(0)
    model = build_model("builtin:cnn_tiny").eval()
    layers = masks.prunable_layers(model, "head")
    x = torch.rand(2, 1, 28, 28)
    scores = hydra.init_scores(layers, "structured", model=model, example=x)
    seen = {}
    model.features[3].register_forward_hook(lambda m, i, o: seen.__setitem__("relu", i[0]))
    with masks.masked(model, layers, scores, "structured", 0.5, example=x):
        model(x)
    zero_channels = (seen["relu"].abs().sum((0, 2, 3)) == 0).sum().item()
    assert zero_channels == model.features[0].out_channels // 2
    targets = masks.channel_targets(model, layers, x)
    assert targets[model.features[0]] is model.features[2]  # the ReLU after conv, BN
    assert targets[model.fc] is model.relu
    assert masks.channel_targets(model, layers)[model.features[0]] is model.features[1]


def test_foreign_loop_pruning_step_refuses_hydra():
    from robust_compress.engine.session import Session
    from robust_compress.errors import UserError
    from robust_compress.recipe.loader import parse_recipe

    recipe = parse_recipe(
        "name: h\nmodel: {spec: builtin:cnn_tiny}\ndata: {name: synthetic}\n"
        "threat: {eps: 0.1}\nstages:\n  - prune: {method: hydra, ratio: 0.5}\n"
    )
    session = Session(recipe)
    session.setup()
    with pytest.raises(UserError, match="runs only inside Session.run"):
        session.pruning_step()


def test_prune_stage_runs_a_registered_method(tmp_path):
    from robust_compress.pruning.configs import PruneStage
    from robust_compress.pruning.registry import PRUNE_METHODS

    class ZeroHeadBias(PruneStage):
        method: str = "zero_head_bias"

    def run(session, stage, label):
        session.model.head.bias.data.zero_()
        session.results["prune"] = {"importance": stage.method, "ratio": stage.ratio}

    PRUNE_METHODS.add("zero_head_bias", run, config=ZeroHeadBias)
    try:
        recipe = parse_recipe(
            "name: p\nmodel: {spec: builtin:cnn_tiny}\n"
            "data: {name: synthetic, train_subset: 64, test_subset: 64}\n"
            "threat: {eps: 0.1}\nstages:\n  - prune: {method: zero_head_bias, ratio: 0.5}\n"
        )
        session = Session(recipe, tmp_path / "run")
        session.setup()
        report = session.run()
    finally:
        PRUNE_METHODS.remove("zero_head_bias")
    assert report["prune"] == {"importance": "zero_head_bias", "ratio": 0.5}
    assert session.model.head.bias.eq(0).all()
