"""The optional settings of the structured pruner (``StructuredPruner(..., **options)``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from torch import Tensor, nn

from robust_compress.errors import UserError, suggest
from robust_compress.registry import IMPORTANCE


@dataclass
class PrunerOptions:
    """Keyword options of the structured pruner (see its docstring for each one)."""

    global_pruning: bool = False
    ignore: Sequence[str] = ()
    round_to: int | None = None
    adversary: Any = None
    batches: Callable[[], Iterable[tuple[Tensor, Tensor]]] | None = None
    grad_batches: int = 4
    seed: int = 0
    scores: Mapping[nn.Module, Tensor] | None = None
    sparsity_reg: float = 0.0
    layer_ratios: Mapping[str, float] | None = None

    @classmethod
    def from_keywords(cls, options: dict[str, Any]) -> PrunerOptions:
        """Build from keywords; an unknown one is a :class:`UserError` with close names."""
        known = [f.name for f in fields(cls)]
        for name in options:
            if name not in known:
                raise UserError(f"unknown pruner option {name!r}." + suggest(name, known))
        return cls(**options)


def validate(importance: str, ratio: float, steps: int, o: PrunerOptions) -> None:
    """Check the pruner's settings.

    Raises:
        UserError: A value is out of range, or the criterion lacks what it needs.
    """
    IMPORTANCE.entry(importance)  # raises UserError with close matches when unknown
    if not 0.0 <= float(ratio) < 1.0:
        raise UserError(f"pruning ratio must be in [0, 1), got {ratio}.")
    if int(steps) < 1:
        raise UserError(f"pruning steps must be at least 1, got {steps}.")
    if o.round_to is not None and int(o.round_to) < 1:
        raise UserError(f"round_to must be a positive integer or None, got {o.round_to}.")
    if fact(importance, "gradients") and o.batches is None:
        raise UserError(f"importance {importance!r} needs batches: a callable yielding (x, y).")
    if fact(importance, "needs_adversary") and o.adversary is None:
        raise UserError(f"importance {importance!r} needs an adversary with perturb(model, x, y).")
    for name, layer_ratio in (o.layer_ratios or {}).items():
        if not 0.0 <= float(layer_ratio) < 1.0:
            raise UserError(
                f"pruning ratio of layer {name!r} must be in [0, 1), got {layer_ratio}."
            )
    if int(o.grad_batches) < 1:
        raise UserError(f"grad_batches must be at least 1, got {o.grad_batches}.")


def fact(importance: str, key: str) -> bool:
    """One meta fact of a registered importance criterion (``gradients``, ...)."""
    return bool(IMPORTANCE.entry(importance).meta.get(key, False))


def keep_one_ratios(model: nn.Module, ratio: float, ignored: list[str]) -> dict[nn.Module, float]:
    """Per-layer ratios that leave one output channel where ``ratio`` would leave none.

    Torch-Pruning keeps ``int(n * (1 - ratio))`` of a layer's ``n`` channels and skips the
    layer when that is 0 (a ratio of 0.99 removes nothing from a 64-channel conv), while
    :func:`robust_compress.pruning.masks.keep_count` keeps at least one. Those layers get a
    ratio that keeps exactly one, so a mask and the pruned model agree at every ratio.

    Args:
        model: The model to prune.
        ratio: The pruner's ratio.
        ignored: Names of the modules kept whole.
    """
    skip = set(ignored)
    return {
        m: (n - 1.5) / n
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear) and name not in skip
        for n in [m.weight.shape[0]]
        if n > 1 and int(n * (1 - ratio)) < 1
    }


def ratio_overrides(
    model: nn.Module,
    ratio: float,
    layer_ratios: Mapping[str, float],
    ignored: list[str],
    global_pruning: bool,
) -> dict | None:
    """Torch-Pruning's ``pruning_ratio_dict``, or None when there is nothing to override.

    The named groups' own ``layer_ratios``, over :func:`keep_one_ratios` for per-layer pruning,
    so that a layer without its own ratio still keeps one channel.
    """
    from robust_compress.adapters.torch_pruning.graph import ratio_dict

    keep_one = {} if global_pruning else keep_one_ratios(model, ratio, ignored)
    return {**keep_one, **(ratio_dict(model, layer_ratios) or {})} or None
