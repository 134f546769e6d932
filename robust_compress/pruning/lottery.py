"""Lottery tickets under attack: iterative magnitude pruning with weight rewinding.

Frankle and Carbin (ICLR 2019) find sparse "winning tickets": train, remove the smallest
weights, rewind the survivors to their early values and train again, for several rounds.
Here every round trains adversarially. Pruning is unstructured and per layer: after round
``r`` of ``R``, each prunable layer keeps ``(1 - ratio) ** (r / R)`` of its weights (the
largest by magnitude among those still alive). Plain torch only.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from robust_compress.pruning.hydra import keep_count

log = logging.getLogger(__name__)


def round_ratio(ratio: float, round_: int, rounds: int) -> float:
    """Fraction of each layer's weights pruned after ``round_`` of ``rounds`` rounds."""
    return 1.0 - (1.0 - ratio) ** (round_ / rounds)


def magnitude_masks(
    layers: dict[str, nn.Module], masks: dict[str, Tensor], ratio: float
) -> dict[str, Tensor]:
    """New masks keeping, per layer, the largest ``1 - ratio`` of weights still alive.

    Args:
        layers: The pruned layers, by name.
        masks: The current boolean masks by layer name (a missing one means all alive).
        ratio: Fraction of each layer's weights pruned after this round (cumulative).
    """
    out = {}
    for name, m in layers.items():
        w = m.weight.detach().abs()
        alive = masks.get(name, torch.ones_like(w, dtype=torch.bool))
        ranked = torch.where(alive, w, torch.full_like(w, -1.0)).flatten()
        keep = torch.topk(ranked, keep_count(w.numel(), ratio)).indices
        mask = torch.zeros(w.numel(), dtype=torch.bool)
        mask[keep] = True
        out[name] = mask.view_as(w) & alive
    return out


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    """A copy of the model's parameters and buffers, to rewind to."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def rewind(model: nn.Module, state: dict[str, Tensor], masks: dict[str, Tensor]) -> None:
    """Load ``state`` into ``model`` (parameters and BatchNorm statistics) and apply ``masks``."""
    model.load_state_dict(state)
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        modules[name].weight.mul_(mask.to(modules[name].weight.dtype))


def sparsity(masks: dict[str, Tensor]) -> float:
    """Fraction of masked-out weights over all masked layers."""
    total = sum(m.numel() for m in masks.values())
    return 1.0 - sum(int(m.sum()) for m in masks.values()) / max(total, 1)
