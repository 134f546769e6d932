"""Where the model runs and at what precision: the recipe's ``device`` and ``compute`` block.

``device: auto`` is the first CUDA GPU when torch sees one, else the CPU; ``cpu``, ``cuda`` and
``cuda:N`` ask for one (a GPU asked for but missing is an error, not a silent CPU run). Under
torchrun each rank takes ``cuda:LOCAL_RANK``. Data stays on the CPU until a batch is handed
out, then moves to the model's device (pinned memory, non-blocking copies on CUDA).

``compute.mixed_precision`` (``bf16`` or ``fp16``; off by default) runs the forward and
backward passes of training and of the training-time attacks under ``torch.autocast``; ``fp16``
adds a gradient scaler. The attack's projection onto the eps-ball, every reported figure and
the audit stay in float32 (see docs/devices.md for why).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from typing import Literal

import torch
from pydantic import BaseModel, Field

from robust_compress.config import STRICT
from robust_compress.errors import UserError

log = logging.getLogger(__name__)
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
Precision = Literal["none", "bf16", "fp16"]


class ComputeConfig(BaseModel):
    """How the engine uses its device (the recipe's ``compute`` block)."""

    model_config = STRICT
    mixed_precision: Precision = Field(
        "none", description="autocast dtype of training and training-time attacks"
    )
    channels_last: bool = Field(False, description="NHWC memory format for model and batches")
    cudnn_benchmark: bool = Field(False, description="let cuDNN pick its fastest kernels")
    compile: bool = Field(False, description="torch.compile the model for training steps")


def check_device_name(name: str) -> str:
    """``name`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; else a ValueError."""
    if not DEVICE_PATTERN.match(name):
        raise ValueError(f"device {name!r}: use auto, cpu, cuda or cuda:N")
    return name


def resolve_device(name: str = "auto") -> torch.device:
    """The device ``name`` means on this machine (see the module docstring).

    Raises:
        UserError: A CUDA device is asked for and torch cannot use it.
    """
    check_device_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError(
            f"device {name!r} asked for, but torch sees no CUDA GPU (torch.cuda.is_available() "
            "is False: no GPU, no driver, or a CPU build of torch); use device: auto or cpu."
        )
    if name == "cuda":
        name = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    index = int(name.split(":")[1])
    if index >= torch.cuda.device_count():
        raise UserError(f"device {name!r}: torch sees {torch.cuda.device_count()} CUDA GPU(s).")
    return torch.device(name)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``, or None for float32.

    Raises:
        UserError: ``fp16`` on the CPU, or ``bf16`` on a GPU without bfloat16.
    """
    if precision == "none":
        return None
    if precision == "fp16" and device.type == "cpu":
        raise UserError("compute.mixed_precision fp16 needs a GPU; on the CPU use bf16 or none.")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"{device} has no bfloat16; use compute.mixed_precision fp16 or none.")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` on ``device`` with ``dtype``; a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter or buffer (the CPU for a model without any)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def prepare(name: str, compute: ComputeConfig) -> tuple[torch.device, torch.dtype | None]:
    """Resolve device ``name`` and the autocast dtype; set cuDNN's benchmark mode if asked.

    Raises:
        UserError: The device or the precision is not available here.
    """
    device = resolve_device(name)
    dtype = autocast_dtype(device, compute.mixed_precision)
    if compute.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    log.info("device %s%s", device, f", autocast {dtype}" if dtype is not None else "")
    return device, dtype


def place(model: torch.nn.Module, device: torch.device, channels_last: bool) -> torch.nn.Module:
    """``model`` moved to ``device``, in channels-last memory format when ``channels_last``."""
    if channels_last:
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)
