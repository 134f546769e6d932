"""Calibration for the Brevitas quantizer: the inputs of a user's iterable, and the passes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from robust_compress.adapters.brevitas.compat import bias_correction, calibration_mode
from robust_compress.errors import UserError, first_line


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


def calibrate(qmodel: nn.Module, batches: list[Tensor], correct_bias: bool, name: str) -> None:
    """Set the activation scales of ``qmodel`` on ``batches``; then correct its biases.

    Args:
        qmodel: The fake-quant model (in eval mode).
        batches: Input batches.
        correct_bias: Run Brevitas' bias correction after the calibration.
        name: The float model's class name (for messages).

    Raises:
        UserError: The fake-quant model fails to run (an operation Brevitas cannot handle).
    """
    phase = "calibration"
    try:
        with torch.no_grad():
            with calibration_mode(qmodel):
                for x in batches:
                    qmodel(x)
            if correct_bias:
                phase = "bias correction"
                with bias_correction(qmodel):
                    for x in batches:
                        qmodel(x)
    except UserError:
        raise
    except Exception as exc:
        hint = (
            "set quantize.bias_correction: false, or choose another model"
            if phase == "bias correction"
            else "choose another model, or quantize a submodule Brevitas supports"
        )
        raise UserError(
            f"Brevitas' fake-quant {name} fails in its {phase} ({type(exc).__name__}: "
            f"{first_line(exc)[:200]}); Brevitas cannot run an operation of this model "
            f"on quantized tensors: {hint}."
        ) from None
