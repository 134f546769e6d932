"""Reference L-inf attacks in plain PyTorch (FGSM-RS and PGD), for training and evaluation.

These are the baseline the ART adapter is measured against. Both attack with parameter
gradients off and BatchNorm in eval mode (see :func:`frozen_for_attack`), and give the model
back exactly as they found it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robust_compress.models.state import preserved_state
from robust_compress.threat import project


@contextlib.contextmanager
def frozen_for_attack(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode with parameter gradients off; restore both afterwards.

    Eval mode keeps BatchNorm statistics untouched while attacking; turning off
    ``requires_grad`` spares the backward pass the weight gradients.
    """
    with preserved_state(model, eval_mode=True, requires_grad=False):
        yield model


def _input_grad(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm_rs(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    alpha: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """FGSM with a random start ("Fast is better than free", Wong et al. 2020).

    Args:
        model: The classifier.
        x: Inputs in [0, 1].
        y: True labels.
        eps: L-inf radius in pixel space.
        alpha: Step size; 1.25 * eps by default, as in the paper.
        generator: Random generator for the start.

    Returns:
        Adversarial inputs in [0, 1] within ``eps`` of ``x``.
    """
    alpha = 1.25 * eps if alpha is None else alpha
    return pgd_linf(model, x, y, eps, alpha, 1, random_start=True, generator=generator)


def pgd_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    step: float,
    steps: int,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Projected gradient descent under an L-inf constraint (Madry et al. 2018).

    Args:
        model: The classifier.
        x: Inputs in [0, 1].
        y: True labels.
        eps: L-inf radius in pixel space.
        step: Step size per iteration.
        steps: Number of iterations.
        random_start: Start from a uniform point in the eps-ball.
        generator: Random generator for the start.

    Returns:
        Adversarial inputs in [0, 1] within ``eps`` of ``x``.
    """
    with frozen_for_attack(model):
        x_adv = x.clone()
        if random_start:
            # drawn on the CPU (where the generator lives), so every device gets the same start
            noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu")
            noise = noise.to(x.device) * 2 - 1
            x_adv = (x + noise * eps).clamp(0, 1)
        for _ in range(steps):
            x_adv = x_adv + step * _input_grad(model, x_adv, y).sign()
            x_adv = project(x_adv, x, eps, "linf")
    return x_adv.detach()


@torch.no_grad()
def correct(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Boolean tensor: which examples ``model`` classifies correctly (in eval mode).

    Every submodule's train/eval mode is restored afterwards.
    """
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        return model(x).argmax(1) == y
    finally:
        for m, mode in modes.items():
            m.training = mode
