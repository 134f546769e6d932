"""Weight-only fake quantization of one layer, for bit-width sensitivity.

Symmetric, per output channel, narrow range, as the Brevitas backend quantizes weights; 8 bits
use the 7-bit grid the int8 export uses. Activations stay float: the figure is the cost of the
layer's weight grid alone.
"""

from __future__ import annotations

import torch
from torch import nn


def grid_bits(bits: int) -> int:
    """The grid a weight bit width uses (8 bits use 7, see the Brevitas adapter)."""
    return 7 if bits == 8 else bits


@torch.no_grad()
def quantize_weight(layer: nn.Module, bits: int) -> None:
    """Round ``layer.weight`` in place to a symmetric per-output-channel grid of ``bits``."""
    w = layer.weight
    levels = 2 ** (grid_bits(bits) - 1) - 1
    flat = w.reshape(w.shape[0], -1)
    scale = flat.abs().amax(dim=1).clamp_min(1e-12) / levels
    shape = (-1,) + (1,) * (w.dim() - 1)
    w.copy_((w / scale.view(shape)).round().clamp(-levels, levels) * scale.view(shape))


def quantizable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every Conv2d and Linear of ``model`` (the head too: it is quantized as well)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
