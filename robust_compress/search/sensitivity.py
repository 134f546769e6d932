"""Robust sensitivity: what compressing one layer alone costs in validation robust accuracy.

For each group Torch-Pruning prunes together (named by its root layer) and each ratio, a copy
of the model loses that fraction of the group's channels, nothing else, and no fine-tuning; for
each Conv2d and Linear and each bit width, a copy has only that layer's weights rounded. The
drop is in points of robust accuracy against the unchanged model, on the validation split.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

from torch import Tensor, nn

from robust_compress.pruning.size import size_of
from robust_compress.search.weight_quant import quantizable_layers, quantize_weight

log = logging.getLogger(__name__)
Measure = Callable[[nn.Module], dict[str, float]]


def pruner_for(importance: str, layer_ratios: dict[str, float], ignore, seed: int):
    """A structured pruner that prunes only the named groups, each by its ratio."""
    from robust_compress.adapters.torch_pruning.pruner import StructuredPruner

    return StructuredPruner(importance, 0.0, layer_ratios=layer_ratios, ignore=ignore, seed=seed)


def prunable_groups(model: nn.Module, example: Tensor, ignore=(), seed: int = 0) -> list[dict]:
    """The groups of ``model`` a structured pruner would prune, by root layer name."""
    pruner = pruner_for("l1", {}, list(ignore), seed)
    pruner.prepare(copy.deepcopy(model), example)
    return pruner.groups()


def pruned_copy(
    model: nn.Module,
    example: Tensor,
    layer_ratios: dict[str, float],
    importance: str = "l1",
    ignore=(),
    seed: int = 0,
) -> nn.Module:
    """A copy of ``model`` with each named group pruned by its ratio (``model`` is untouched)."""
    twin = copy.deepcopy(model)
    pruner = pruner_for(importance, layer_ratios, list(ignore), seed)
    pruner.prepare(twin, example)
    pruner.step()
    return twin.eval()


def prune_sensitivity(model, example, measure: Measure, base: float, stage, seed=0, calibrate=None):
    """One row per (group, ratio): robust and clean accuracy, drop in points, size.

    Args:
        model: The float model (not changed).
        example: An input batch (for tracing and counting MACs).
        measure: Returns ``{"clean", "robust"}`` of a model on the validation split.
        base: Robust accuracy of ``model`` itself.
        stage: The stage (its ``ratios``, ``importance`` and ``ignore``).
        seed: Seed of the ``random`` criterion.
        calibrate: Re-estimates a pruned copy's BatchNorm statistics before it is measured
            (:func:`robust_compress.search.batchnorm.calibrator`), or None.
    """
    rows = []
    for group in prunable_groups(model, example, stage.ignore, seed):
        for ratio in stage.ratios:
            twin = pruned_copy(
                model, example, {group["name"]: ratio}, stage.importance, stage.ignore, seed
            )
            figures = measure(calibrate(twin) if calibrate else twin)
            rows.append(
                {
                    "layer": group["name"],
                    "channels": group["channels"],
                    "ratio": ratio,
                    **figures,
                    "drop": 100 * (base - figures["robust"]),
                    **size_of(twin, example),
                }
            )
            log.info("sensitivity %s at %.2f: robust %.3f", group["name"], ratio, figures["robust"])
    return rows


def bits_sensitivity(model: nn.Module, measure: Measure, base: float, bits: list[int]):
    """One row per (Conv2d or Linear, bit width): robust accuracy and drop in points."""
    rows = []
    for name in quantizable_layers(model):
        for b in bits:
            twin = copy.deepcopy(model).eval()
            quantize_weight(dict(twin.named_modules())[name], b)
            figures = measure(twin)
            rows.append(
                {"layer": name, "bits": b, **figures, "drop": 100 * (base - figures["robust"])}
            )
    return rows


def measure_sensitivity(model, example, measure: Measure, stage, seed=0, calibrate=None) -> dict:
    """The whole sensitivity report of ``model``: its own figures, the prune and bit rows."""
    start = measure(model)
    prune = prune_sensitivity(model, example, measure, start["robust"], stage, seed, calibrate)
    return {
        "start": start,
        "prune": prune,
        "bits": bits_sensitivity(model, measure, start["robust"], list(stage.bits)),
    }


def with_bits(model: nn.Module, layer_bits: dict[str, int]) -> nn.Module:
    """A copy of ``model`` whose named layers have their weights rounded to their bits."""
    twin = copy.deepcopy(model).eval()
    modules = dict(twin.named_modules())
    for name, bits in layer_bits.items():
        quantize_weight(modules[name], bits)
    return twin


def fit_bits(model, measure: Measure, layer_bits: dict[str, int], rows: list[dict], floor: float):
    """Widen layers, most sensitive first, until all of them together keep ``floor`` robust.

    Each layer's drop was measured alone; together they can cost more. While the model with
    every chosen width is below ``floor``, the layer whose own drop at its width is largest
    moves to the next wider width measured.

    Returns:
        The widths and the robust accuracy of the model with all of them.
    """
    drop = {(r["layer"], r["bits"]): r["drop"] for r in rows}
    widths = sorted({r["bits"] for r in rows} | {8})
    bits = dict(layer_bits)
    robust = measure(with_bits(model, bits))["robust"]
    while robust < floor:
        narrow = [name for name, b in bits.items() if b < widths[-1]]
        if not narrow:
            break
        worst = max(narrow, key=lambda n: drop.get((n, bits[n]), 0.0))
        bits[worst] = widths[widths.index(bits[worst]) + 1]
        robust = measure(with_bits(model, bits))["robust"]
        log.info("bits: %s widened to %d: robust %.3f", worst, bits[worst], robust)
    return bits, robust
