"""Calibration batches for the Brevitas quantizer: the inputs of a user's iterable."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from robust_compress.errors import UserError


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def take_batches(calib: Iterable[Any], n: int, device: torch.device) -> list[Tensor]:
    """The first ``n`` input batches of ``calib`` (the ``x`` of ``(x, y)`` pairs)."""
    batches: list[Tensor] = []
    for item in calib:
        x = item[0] if isinstance(item, tuple | list) else item
        if not isinstance(x, Tensor):
            raise UserError(
                f"calibration data must yield tensors or (x, y) pairs, got {type(x).__name__}."
            )
        batches.append(x.detach().to(device))
        if len(batches) >= n:
            break
    if not batches:
        raise UserError("calibration data is empty; pass at least one input batch.")
    return batches
