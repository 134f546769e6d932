"""The size of a model as pruning changes it: parameters and MACs (Torch-Pruning's counter)."""

from __future__ import annotations

import torch
from torch import nn


def size_of(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """Parameters and MACs of a float model on ``example``."""
    from robust_compress.adapters.torch_pruning.pruner import count_macs_params

    macs, params = count_macs_params(model, example)
    return {"params": params, "macs": macs}
