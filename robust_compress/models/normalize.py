"""Per-channel normalisation as the model's first layer, so the model takes pixels in [0, 1].

A model trained on normalised inputs (``(x - mean) / std``, as torchvision's and timm's are)
gets its mean and std as a layer in front: the threat model stays in pixel space, attacks and
the audit perturb pixels, and the exported ONNX file takes pixels. The layer is attached in
place (``model.input_norm``) and the model's class becomes a subclass whose ``forward``
normalises first, so every layer keeps its name (recipes' ``ignore`` lists, checkpoints and
state dicts of the user's model still fit); mean and std are buffers kept out of the state
dict (the recipe holds them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from robust_compress.errors import UserError

_SUBCLASSES: dict[type, type] = {}


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        shape = (1, len(mean), 1, 1)
        self.register_buffer("mean", torch.tensor(mean).reshape(shape), persistent=False)
        self.register_buffer("std", torch.tensor(std).reshape(shape), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` (N, C, H, W)."""
        return (x - self.mean) / self.std


def _normalizing(cls: type) -> type:
    """The subclass of ``cls`` whose ``forward`` runs ``input_norm`` first (made once)."""
    if cls not in _SUBCLASSES:

        def forward(self, x):  # one argument: torch.fx cannot trace *args
            return cls.forward(self, self.input_norm(x))

        name = f"Normalized{cls.__name__}"
        _SUBCLASSES[cls] = type(name, (cls,), {"forward": forward, "__module__": __name__})
    return _SUBCLASSES[cls]


def with_input_normalization(
    model: nn.Module, mean: Sequence[float], std: Sequence[float], channels: int
) -> nn.Module:
    """Make ``model`` normalise its input first; returns ``model`` (changed in place).

    Raises:
        UserError: ``mean``/``std`` do not have one value per input channel, or the model
            already has an ``input_norm``.
    """
    if len(mean) != channels or len(std) != channels:
        raise UserError(
            f"model.normalize has {len(mean)} means and {len(std)} stds for {channels}-channel "
            "images; give one value per channel."
        )
    if hasattr(model, "input_norm"):
        raise UserError(f"{type(model).__name__} already has an input_norm; normalize it once.")
    model.input_norm = Normalize(mean, std)
    model.__class__ = _normalizing(type(model))
    return model


def input_normalization(model: nn.Module) -> tuple[list[float], list[float]] | None:
    """The ``(mean, std)`` ``model`` normalises its input with, or None."""
    norm = getattr(model, "input_norm", None)
    if not isinstance(norm, Normalize):
        return None
    return norm.mean.flatten().tolist(), norm.std.flatten().tolist()
