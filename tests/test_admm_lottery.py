"""Unit tests of the ADMM and lottery-ticket building blocks (plain torch, tiny tensors)."""

import pytest
import torch
from torch import nn

from robust_compress.engine.session import Session
from robust_compress.pruning import lottery
from robust_compress.pruning.admm import Admm, project_filters, rows
from robust_compress.recipe.loader import parse_recipe


def test_projection_keeps_the_filters_of_largest_norm():
    w = torch.stack([torch.full((2, 3, 3), v) for v in (0.1, -3.0, 0.5, 2.0)])
    z = project_filters(w, 0.5)
    assert [bool(z[i].abs().sum() > 0) for i in range(4)] == [False, True, False, True]
    assert torch.equal(z[1], w[1]) and torch.equal(z[3], w[3])


def test_admm_penalty_pulls_pruned_filters_to_zero_and_scores_follow_z():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 8, 3)
    admm = Admm({"conv": conv}, ratio=0.5, rho=1.0, rho_growth=2.0)
    w = lambda: rows([conv.weight, conv.bias]).detach()  # noqa: E731  (no BatchNorm: W and b)
    support = admm.z["conv"].flatten(1).norm(dim=1) > 0
    before = w()[~support].norm()
    opt = torch.optim.SGD(conv.parameters(), lr=0.5)
    for _ in range(20):  # only the penalty: W moves towards Z - U
        opt.zero_grad()
        admm.penalty().backward()
        opt.step()
    assert w()[~support].norm() < 0.01 * before
    u_before = admm.u["conv"].clone()
    w_minus_z = w() - project_filters(w() + u_before, 0.5)
    residual = admm.update()
    assert residual < 0.01 and admm.rho == 2.0 and admm.updates == 1
    # scaled dual: U + W - Z at the old rho, divided by the growth for the new rho
    assert torch.allclose(admm.u["conv"], (u_before + w_minus_z) / 2.0)
    scores = admm.filter_scores()[conv]
    kept = set(torch.topk(scores, 4).indices.tolist())
    assert kept == set(support.nonzero().flatten().tolist())
    state = admm.state()
    other = Admm({"conv": conv}, 0.5, 1.0, 2.0)
    other.load_state(state)
    assert other.rho == 2.0 and torch.equal(other.u["conv"], admm.u["conv"])


def test_lottery_masks_shrink_within_the_survivors():
    torch.manual_seed(0)
    layer = nn.Linear(10, 10)
    layers = {"fc": layer}
    first = lottery.magnitude_masks(layers, {}, lottery.round_ratio(0.8, 1, 2))
    with torch.no_grad():  # training moves a pruned weight up: it must stay pruned
        layer.weight[~first["fc"]] = 100.0
    second = lottery.magnitude_masks(layers, first, lottery.round_ratio(0.8, 2, 2))
    for mask, r in ((first, 1), (second, 2)):  # Torch-Pruning's count: int(n * (1 - ratio))
        assert int(mask["fc"].sum()) == int(100 * (1 - lottery.round_ratio(0.8, r, 2)))
    assert not (second["fc"] & ~first["fc"]).any()
    assert lottery.sparsity(second) == pytest.approx(0.8, abs=0.011)


def test_rewind_restores_initial_values_of_the_survivors():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4))
    start = lottery.snapshot(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    masks = {"0": torch.rand(4, 4) > 0.5}
    lottery.rewind(model, start, masks)
    w = model[0].weight.detach()
    assert torch.equal(w[masks["0"]], start["0.weight"][masks["0"]])
    assert (w[~masks["0"]] == 0).all()


def _lottery_session(reinit: bool) -> Session:
    recipe = parse_recipe(
        "name: l\nmodel: {spec: builtin:cnn_tiny}\n"
        "data: {name: synthetic, batch_size: 64, train_subset: 128, test_subset: 64}\n"
        "threat: {eps: 0.1}\nstages:\n"
        f"  - prune: {{method: lottery, ratio: 0.5, rounds: 1, reinit: {str(reinit).lower()}}}\n"
    )
    session = Session(recipe)
    session.setup()
    return session


def test_reinit_control_loses_the_initial_weights():
    finals = {}
    for reinit in (False, True):
        torch.manual_seed(0)
        session = _lottery_session(reinit)
        init = session.model.features[0].weight.detach().clone()
        session.run()
        finals[reinit] = (init, session.model.features[0].weight.detach())
    init, ticket = finals[False]
    _, control = finals[True]
    assert torch.equal(ticket != 0, control != 0)  # the control keeps the ticket's mask
    # the ticket trained for one epoch from its initial values, the control from new ones
    assert (ticket - init)[ticket != 0].abs().mean() < (control - init)[control != 0].abs().mean()
