"""What the prune methods do to a session: pick layers, remove channels, train, report.

Each prune method (:data:`~robust_compress.pruning.registry.PRUNE_METHODS`) is a
``run(session, stage, label)`` built from these: the layers a method scores, the removal of
the lowest-scoring channels through the Torch-Pruning adapter, (adversarial) training in
phases, random re-initialisation, and the ``prune`` report section of the methods that keep
the model's shapes.
"""

from __future__ import annotations

import torch
from torch import nn

from robust_compress.pruning.masks import prunable_layers
from robust_compress.training.fit import FitHooks, fit


def head_of(session) -> str:
    """The name of the classifier head of ``session.model`` (never pruned)."""
    from robust_compress.models.layer_names import find_head

    return find_head(session.model, session.example())


def scored_layers(session, stage) -> dict[str, nn.Module]:
    """The layers a structured method scores: each Conv2d and Linear but the head and ``ignore``."""
    from robust_compress.models.layer_names import resolve_names

    kept = set(resolve_names(session.model, stage.ignore))
    layers = prunable_layers(session.model, head_of(session))
    return {name: m for name, m in layers.items() if name not in kept}


def prune_by_scores(session, stage, scores, importance: str) -> None:
    """Remove the lowest-score channels of each layer through the Torch-Pruning adapter.

    Args:
        session: The running session; ``session.results["prune"]`` gets the pruner's report.
        stage: The prune stage (its ``ratio`` and ``ignore``).
        scores: One score per output channel, keyed by layer.
        importance: The name the report gives the criterion (the method's name).
    """
    from robust_compress.adapters.torch_pruning.pruner import StructuredPruner

    pruner = StructuredPruner(
        "l1", stage.ratio, 1, ignore=stage.ignore, seed=session.recipe.seed, scores=scores
    )
    pruner.prepare(session.model, session.example())
    pruner.step()
    report = pruner.report()
    report["importance"] = importance
    session.results["prune"] = report


def sparse_report(session, method: str, stage, sparsity: float, **info) -> None:
    """Unstructured methods keep the model's shapes: report the sparsity instead of sizes."""
    session.results["prune"] = {
        "importance": method,
        "ratio": stage.ratio,
        "sparsity": sparsity,
        **info,
    }


def fit_phases(session, stage, label: str, phases: list[int], hooks: FitHooks) -> None:
    """Train through ``phases`` (the LR schedule restarts in each) under the stage's adversary.

    Args:
        session: The running session.
        stage: The prune stage (its ``optimizer``, ``lr_schedule`` and ``adversary``).
        label: The stage's label.
        phases: Epochs of each phase.
        hooks: What the method adds to the epoch loop (``phases`` is set here).
    """
    adversary = session.adversary_for(session.stage_index, stage.adversary)
    hooks.phases = phases
    fit(session, label, sum(phases), stage.optimizer, stage.lr_schedule, adversary, hooks)


def initial_state(session, seed: int) -> dict[str, torch.Tensor]:
    """A fresh draw of the model's own initialisation, as a state dict of the session's model.

    The recipe's model is built again from its spec under ``seed`` (the global RNG is left as
    found), so every layer is drawn as the model's constructor draws it. When that model's
    shapes differ from the session's (an earlier structured prune), each module of a copy of
    the session's model calls its own ``reset_parameters`` under ``seed`` instead.
    """
    import copy

    current = session.model.state_dict()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = session._fresh_model().state_dict()
        same = fresh.keys() == current.keys() and all(
            fresh[k].shape == v.shape for k, v in current.items()
        )
        if not same:
            other = copy.deepcopy(session.model)
            for m in other.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            fresh = other.state_dict()
    return {k: v.detach().clone().to(current[k].device) for k, v in fresh.items()}


def reinitialize(model: nn.Module, seed: int) -> None:
    """Random weights: Kaiming-normal convolutions and Linear layers, zero biases, fresh BN.

    Edge-popup's random weights (its paper draws Kaiming-normal weights); a control that must
    match the model's own initialisation uses :func:`initial_state` instead.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.reset_parameters()
