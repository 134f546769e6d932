"""Put back what a library or an attack disturbs on a model: modes and ``requires_grad``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def preserved_state(
    model: nn.Module,
    *,
    eval_mode: bool = False,
    requires_grad: bool | None = None,
    keep_grads: bool = False,
) -> Iterator[nn.Module]:
    """Change ``model``'s mode and gradient flags inside the block; restore both on exit.

    Modes are restored per module, ``requires_grad`` per parameter name, so parameters that
    were replaced inside the block (as pruning does) get their owner's flag back.

    Args:
        model: The model.
        eval_mode: Put every module in eval mode inside the block.
        requires_grad: Set every parameter's ``requires_grad`` inside the block (True also
            enables autograd there); None leaves the flags alone.
        keep_grads: Also give every parameter back its ``.grad`` (the same tensor object, or
            None); libraries such as ART overwrite them.
    """
    modes = {m: m.training for m in model.modules()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    grads = {n: p.grad for n, p in model.named_parameters()} if keep_grads else None
    if eval_mode:
        model.eval()
    if requires_grad is not None:
        for p in model.parameters():
            p.requires_grad_(requires_grad)
    grad_ctx = torch.enable_grad() if requires_grad else contextlib.nullcontext()
    try:
        with grad_ctx:
            yield model
    finally:
        for m, mode in modes.items():
            m.training = mode
        for n, p in model.named_parameters():
            p.requires_grad_(flags.get(n, True))
            if grads is not None:
                p.grad = grads.get(n)
