"""The one optimizer factory and the learning-rate schedules."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from robust_compress.errors import UserError


def lr_factor(schedule: str, progress: float) -> float:
    """Learning-rate multiplier at ``progress`` in [0, 1] of training."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "onecycle":
        return progress / 0.2 if progress < 0.2 else max(0.0, (1 - progress) / 0.8)
    raise UserError(f"unknown lr schedule {schedule!r}; use onecycle, cosine or constant.")


def build_optimizer(model: nn.Module, cfg: Any) -> torch.optim.Optimizer:
    """The optimizer ``cfg`` describes, over the trainable parameters of ``model``.

    Args:
        model: The model.
        cfg: An :class:`~robust_compress.config.OptimizerConfig`, a
            :class:`~robust_compress.training.loop.TrainConfig`, or anything with ``lr``,
            ``momentum`` and ``weight_decay`` (and ``name``: ``sgd``, the default, or ``adam``).

    Returns:
        SGD (with Nesterov momentum when ``momentum`` > 0) or Adam.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if getattr(cfg, "name", "sgd") == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.momentum > 0,
    )
