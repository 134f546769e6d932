"""A plain-PyTorch training loop: natural, FGSM-RS and PGD-k adversarial training.

The adversary is anything with ``perturb(model, x, y) -> x_adv`` (see
:class:`robust_compress.protocols.Adversary`): the reference attacks below or the ART adapter.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robust_compress.attacks import correct, fgsm_rs, pgd_linf
from robust_compress.data import TensorData
from robust_compress.errors import RunError, UserError

log = logging.getLogger(__name__)
METHODS = ("natural", "fgsm_rs", "pgd")


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
        step = self.step if self.step is not None else 2.5 * self.eps / self.steps
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


@dataclass
class TrainConfig:
    """Options of :func:`train`.

    Attributes:
        epochs: Passes over the training data.
        batch_size: Examples per step.
        lr: Peak learning rate of SGD with Nesterov momentum.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        schedule: ``onecycle`` (linear up for 20% of steps, then linear down), ``cosine``
            or ``constant``.
        seed: Seed of the data order.
    """

    epochs: int = 4
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    seed: int = 0


def lr_factor(schedule: str, progress: float) -> float:
    """Learning-rate multiplier at ``progress`` in [0, 1] of training."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "onecycle":
        return progress / 0.2 if progress < 0.2 else max(0.0, (1 - progress) / 0.8)
    raise UserError(f"unknown lr schedule {schedule!r}; use onecycle, cosine or constant.")


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum over the trainable parameters of ``model``."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.momentum > 0,
    )


BatchHook = Callable[[int, int, float], None]


def train(
    model: nn.Module,
    data: TensorData,
    cfg: TrainConfig,
    adversary=None,
    on_batch: BatchHook | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> nn.Module:
    """Train ``model`` in place, on adversarial examples when ``adversary`` is given.

    Args:
        model: The model to train.
        data: Training data.
        cfg: Optimisation options.
        adversary: Object with ``perturb(model, x, y)``, or None for natural training.
        on_batch: Called as ``on_batch(epoch, batch, loss)`` after each step.
        on_epoch: Called as ``on_epoch(epoch, mean_loss)`` after each epoch.

    Returns:
        The trained model.

    Raises:
        RunError: The loss became NaN or infinite.
    """
    opt = make_optimizer(model, cfg)
    total = cfg.epochs * data.num_batches(cfg.batch_size)
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        losses = []
        for b, (x, y) in enumerate(data.batches(cfg.batch_size, True, cfg.seed + epoch)):
            for group in opt.param_groups:
                group["lr"] = cfg.lr * lr_factor(cfg.schedule, step / total)
            if adversary is not None:
                x = adversary.perturb(model, x, y)
            loss = F.cross_entropy(model(x), y)
            if not torch.isfinite(loss):
                raise RunError(f"training loss is {loss.item()} at epoch {epoch}, batch {b}.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if on_batch:
                on_batch(epoch, b, losses[-1])
        if on_epoch:
            on_epoch(epoch, sum(losses) / len(losses))
    model.eval()
    return model


def evaluate(
    model: nn.Module,
    data: TensorData,
    adversary=None,
    batch_size: int = 500,
    on_batch: Callable[[int], None] | None = None,
) -> float:
    """Accuracy of ``model`` on ``data``, on adversarial examples when ``adversary`` is given."""
    hits = 0
    for b, (x, y) in enumerate(data.batches(batch_size)):
        if adversary is not None:
            x = adversary.perturb(model, x, y)
        hits += int(correct(model, x, y).sum())
        if on_batch:
            on_batch(b)
    return hits / len(data)
