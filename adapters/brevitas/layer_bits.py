"""Per-layer weight bit widths of a Brevitas fake-quant model (mixed precision).

Brevitas builds every quantized layer of one class with the same weight quantizer; a layer's
bit width is the constant its weight quantizer clamps to (``msb_clamp_bit_width_impl``), from
which the per-channel scale is derived as well. Replacing that constant on one layer gives it
another grid and keeps everything else (scaling statistics, export) as it was.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from torch import nn

from robust_compress.errors import UserError, suggest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from brevitas.core.bit_width import BitWidthConst


def quantized_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The layers of a Brevitas model that quantize their weights, by name."""
    return {
        name: module
        for name, module in model.named_modules()
        if hasattr(getattr(module, "weight_quant", None), "tensor_quant")
    }


def apply_layer_bits(model: nn.Module, layer_bits: Mapping[str, int], grid_of) -> None:
    """Give the named layers of ``model`` their own weight bit width.

    Args:
        model: A Brevitas fake-quant model (before calibration, so that bias correction sees
            the final grids).
        layer_bits: Bits by layer name (2 to 8).
        grid_of: Maps a bit width to the grid actually used (8 bits use 7 unless full range).

    Raises:
        UserError: A name is not a quantized layer of the model.
    """
    layers = quantized_layers(model)
    for name, bits in layer_bits.items():
        if name not in layers:
            raise UserError(
                f"quantize.layer_bits names {name!r}, which is not a quantized layer."
                + suggest(name, list(layers))
            )
        tensor_quant = layers[name].weight_quant.tensor_quant
        tensor_quant.msb_clamp_bit_width_impl = BitWidthConst(grid_of(int(bits)))
