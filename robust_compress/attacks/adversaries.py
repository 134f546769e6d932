"""The plain-PyTorch adversaries (L-inf): FGSM, FGSM-RS and PGD, as ``perturb(model, x, y)``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from robust_compress.attacks.torch_attacks import fgsm_rs, pgd_linf
from robust_compress.errors import UserError
from robust_compress.threat import default_step

METHODS = ("natural", "fgsm_rs", "pgd")


class TorchFGSM:
    """Adversary: one signed gradient step of size ``eps`` from the clean input (no start)."""

    def __init__(self, eps: float):
        self.eps = eps

    def perturb(self, model, x, y):
        """Return FGSM examples for ``(x, y)``."""
        return pgd_linf(model, x, y, self.eps, self.eps, 1, random_start=False)


@dataclass
class TorchFGSMRS:
    """Adversary: FGSM with random start, step ``alpha`` (default 1.25 eps)."""

    eps: float
    alpha: float | None = None
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Return adversarial examples for ``(x, y)``."""
        return fgsm_rs(model, x, y, self.eps, self.alpha, self.generator)


@dataclass
class TorchPGD:
    """Adversary: L-inf PGD with ``steps`` steps of size ``step`` and a random start."""

    eps: float
    steps: int = 10
    step: float | None = None
    random_start: bool = True
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Return adversarial examples for ``(x, y)``."""
        step = self.step if self.step is not None else default_step("pgd", self.eps, self.steps)
        return pgd_linf(model, x, y, self.eps, step, self.steps, self.random_start, self.generator)


def make_adversary(method: str, eps: float, steps: int = 10, seed: int = 0):
    """Return the reference adversary for a training ``method`` (None for natural)."""
    gen = torch.Generator().manual_seed(seed)
    if method == "natural":
        return None
    if method == "fgsm_rs":
        return TorchFGSMRS(eps, generator=gen)
    if method == "pgd":
        return TorchPGD(eps, steps=steps, generator=gen)
    raise UserError(f"unknown training method {method!r}; use one of {', '.join(METHODS)}.")
