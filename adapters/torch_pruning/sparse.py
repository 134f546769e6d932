"""Robust sparse training: group-norm regularisation before pruning (Torch-Pruning adapter).

Part of the Torch-Pruning adapter (see :mod:`robust_compress.adapters.torch_pruning.pruner`).

Torch-Pruning 1.6.1's ``GroupNormPruner.regularize(model)`` adds, after ``loss.backward()``,
``reg * gamma_c * w`` to the gradient of every weight slice of channel ``c`` in each prunable
group (the layer's output channel, its BatchNorm scale and the next layer's input slice), i.e.
the gradient of ``reg / 2 * sum_c gamma_c * ||w_c||^2``. ``gamma_c`` runs from 1 for the most
important channel to ``alpha`` = 16 for the least important one (exponentially in between), so
weak channels decay fastest and pruning them later costs little. Biases are not regularised.

What the library gets wrong is handled here: ``gamma`` is ``0 / 0`` when all channels of a
group score alike (a one-channel layer, BatchNorm scales all 1, zero Taylor gradients), which
would fill the gradients with NaN, so such groups are skipped; and its groups hold the channel
indices of the model they were built on, so they must be rebuilt after each pruning step.
"""

from __future__ import annotations

import math

import torch
import torch_pruning as tp
from torch import nn

from robust_compress.errors import UserError
from robust_compress.registry import IMPORTANCE


def sparse_importances() -> list[str]:
    """The registered criteria that rank by weight magnitude alone (meta ``magnitude``)."""
    return [e.name for e in IMPORTANCE.entries() if e.meta.get("magnitude", False)]


def check_sparsity_reg(sparsity_reg: float, importance: str, scores) -> float:
    """Return ``sparsity_reg`` as a float after checking it fits the other options.

    Raises:
        UserError: It is negative or not finite, or regularisation is asked for with an
            importance the regulariser cannot use (the message names the alternatives).
    """
    try:
        reg = float(sparsity_reg)
    except (TypeError, ValueError):
        raise UserError(f"sparsity_reg must be a number >= 0, got {sparsity_reg!r}.") from None
    if not (math.isfinite(reg) and reg >= 0.0):
        raise UserError(f"sparsity_reg must be a finite number >= 0, got {sparsity_reg}.")
    if reg > 0 and scores is not None:
        raise UserError(
            "sparsity_reg cannot be combined with learned (HYDRA) scores; use sparsity_reg with"
            f" importance {', '.join(sparse_importances())}, or scores with sparsity_reg=0."
        )
    if reg > 0 and importance not in sparse_importances():
        raise UserError(
            f"sparsity_reg needs a weight-magnitude importance ({', '.join(sparse_importances())}),"
            f" got {importance!r}: the regulariser re-scores every group at each call, which"
            " Taylor criteria (no gradients then), bn_scale (ties, layers without BatchNorm)"
            " and random (new scores each call) cannot do; or set sparsity_reg=0."
        )
    return reg


class SparsePruner(tp.pruner.GroupNormPruner):
    """``GroupNormPruner`` that skips groups whose channels all score alike in ``regularize``.

    Pruning (``step``) ranks channels exactly as ``GroupNormPruner`` does.
    """

    _regularizing = False

    def estimate_importance(self, group) -> torch.Tensor:
        """Score ``group``; while regularising, tied scores become NaN (the library skips them)."""
        imp = super().estimate_importance(group)
        if self._regularizing and imp is not None and (imp.numel() < 2 or imp.max() == imp.min()):
            return torch.full_like(imp, float("nan"))
        return imp

    def regularize(self, model: nn.Module, alpha: float = 2**4, bias: bool = False) -> None:
        """Add the group-norm penalty's gradient to ``model``'s ``.grad`` (library semantics)."""
        self._regularizing = True
        try:
            super().regularize(model, alpha=alpha, bias=bias)
        finally:
            self._regularizing = False


def regularize(pruner: SparsePruner, model: nn.Module) -> None:
    """Add the group-norm gradient to ``model``'s parameters; modes and flags are untouched.

    No forward pass runs (only weights and ``.grad`` are read), so no mode needs restoring.

    Raises:
        UserError: No parameter of ``model`` has a gradient (``loss.backward()`` comes first).
    """
    if all(p.grad is None for p in model.parameters()):
        raise UserError(
            "StructuredPruner.regularize() found no gradients: call it after loss.backward()"
            " and before optimizer.step()."
        )
    pruner.regularize(model)
