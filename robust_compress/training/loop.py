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

from robust_compress.attacks.torch_attacks import correct, fgsm_rs, frozen_for_attack, pgd_linf
from robust_compress.data.datasets import TensorData
from robust_compress.errors import RunError, UserError
from robust_compress.threat import default_step
from robust_compress.training.distributed import all_finite

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


def build_optimizer(
    model: nn.Module,
    name: str = "sgd",
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum when ``momentum`` > 0) or Adam over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0
    )


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum over the trainable parameters of ``model``."""
    return build_optimizer(model, "sgd", cfg.lr, cfg.momentum, cfg.weight_decay)


BatchHook = Callable[[int, int, float], None]


@dataclass
class Trades:
    """TRADES loss (Zhang et al. 2019), with its inner maximisation in our own loop.

    The loss is the clean cross-entropy plus ``beta`` times the KL divergence between the
    predictions on clean and on adversarial inputs; the adversarial inputs maximise that KL
    with ``steps`` signed steps of ``step`` inside the L-inf ``eps`` ball.
    """

    eps: float
    step: float
    steps: int = 7
    beta: float = 6.0

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, attack_model: nn.Module | None = None
    ) -> Tensor:
        """Return the TRADES loss of ``model`` (in train mode) on the batch.

        ``attack_model`` (default ``model``) runs the inner maximisation: the plain module
        when ``model`` is its DistributedDataParallel wrapper.
        """
        net = model if attack_model is None else attack_model
        with frozen_for_attack(net):
            p_clean = F.softmax(net(x), dim=1)
            x_adv = (x + 0.001 * torch.randn_like(x)).clamp(0, 1)
            for _ in range(self.steps):
                x_adv = x_adv.detach().requires_grad_(True)
                kl = F.kl_div(F.log_softmax(net(x_adv), 1), p_clean, reduction="sum")
                (grad,) = torch.autograd.grad(kl, x_adv)
                x_adv = x_adv + self.step * grad.sign()
                x_adv = torch.min(torch.max(x_adv, x - self.eps), x + self.eps).clamp(0, 1)
        logits = model(x)
        robust = F.kl_div(
            F.log_softmax(model(x_adv.detach()), 1), F.softmax(logits, 1), reduction="batchmean"
        )
        return F.cross_entropy(logits, y) + self.beta * robust


def batch_loss(
    model: nn.Module, x: Tensor, y: Tensor, adversary=None, attack_model: nn.Module | None = None
) -> Tensor:
    """Training loss on one batch: TRADES, cross-entropy on adversarial examples, or clean.

    ``attack_model`` (default ``model``) is what the adversary attacks: the plain module when
    ``model`` is its DistributedDataParallel wrapper.
    """
    target = model if attack_model is None else attack_model
    if isinstance(adversary, Trades):
        return adversary.loss(model, x, y, attack_model=target)
    if adversary is not None:
        x = adversary.perturb(target, x, y)
    return F.cross_entropy(model(x), y)


def train_epoch(
    model: nn.Module,
    data: TensorData,
    opt: torch.optim.Optimizer,
    *,
    batch_size: int,
    seed: int,
    lr_at: Callable[[int], float],
    adversary=None,
    on_batch=None,
    epoch: int = 0,
    where: str = "training",
    shard: tuple[int, int] = (0, 1),
    forward_model: nn.Module | None = None,
    penalty: Callable[[], Tensor] | None = None,
    after_backward: Callable[[], None] | None = None,
) -> float:
    """Run one epoch of (adversarial) training and return the mean loss.

    Args:
        model: The model, trained in place.
        data: Training data, shuffled with ``seed``.
        opt: The optimizer over ``model``'s parameters.
        batch_size: Examples per step.
        seed: Seed of this epoch's data order.
        lr_at: Learning rate for the batch index within this epoch.
        adversary: ``perturb(model, x, y)``, a :class:`Trades`, or None.
        on_batch: Called as ``on_batch(epoch, batch, loss)`` after each step.
        epoch: The epoch number, for hooks and messages.
        where: Names the stage in the message of a non-finite loss.
        shard: ``(rank, world)``: train on this rank's share of the epoch (see
            :meth:`TensorData.batches`); ``batch_size`` is then the per-rank batch.
        forward_model: Computes the loss (``model``'s DistributedDataParallel wrapper);
            the adversary always attacks ``model`` itself.
        penalty: Returns a term added to every batch's loss (e.g. the ADMM penalty); the
            reported loss includes it.
        after_backward: Called after ``loss.backward()`` and before ``opt.step()`` (e.g. a
            group-norm regulariser that adds to the gradients).

    Raises:
        RunError: The loss or a weight became NaN or infinite.
    """
    model.train()
    total = 0.0
    n = 0
    net = model if forward_model is None else forward_model
    rank, world = shard
    for b, (x, y) in enumerate(data.batches(batch_size, True, seed, rank=rank, world=world)):
        for group in opt.param_groups:
            group["lr"] = lr_at(b)
        loss = batch_loss(net, x, y, adversary, attack_model=model)
        if penalty is not None:
            loss = loss + penalty()
        if not all_finite(loss):  # on every rank, so that all ranks stop together
            where_rank = f" (rank {rank}'s loss: {loss.item()})" if world > 1 else ""
            raise RunError(
                f"{where}: loss is {'not finite' if world > 1 else loss.item()} at epoch "
                f"{epoch}, batch {b}{where_rank}."
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if after_backward is not None:
            after_backward()
        opt.step()
        value = loss.item()
        total += value
        n += 1
        if on_batch:
            on_batch(epoch, b, value)
    _check_finite_weights(model, where, epoch)
    return total / max(n, 1)


def _check_finite_weights(model: nn.Module, where: str, epoch: int) -> None:
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise RunError(f"{where}: parameter {name} is not finite after epoch {epoch}.")


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
        adversary: Object with ``perturb(model, x, y)``, a :class:`Trades`, or None.
        on_batch: Called as ``on_batch(epoch, batch, loss)`` after each step.
        on_epoch: Called as ``on_epoch(epoch, mean_loss)`` after each epoch.

    Returns:
        The trained model, in eval mode.

    Raises:
        RunError: The loss became NaN or infinite.
    """
    opt = make_optimizer(model, cfg)
    per_epoch = data.num_batches(cfg.batch_size)
    total = cfg.epochs * per_epoch
    for epoch in range(cfg.epochs):

        def lr_at(b: int, epoch: int = epoch) -> float:
            return cfg.lr * lr_factor(cfg.schedule, (epoch * per_epoch + b) / total)

        loss = train_epoch(
            model,
            data,
            opt,
            batch_size=cfg.batch_size,
            seed=cfg.seed + epoch,
            lr_at=lr_at,
            adversary=adversary,
            on_batch=on_batch,
            epoch=epoch,
        )
        if on_epoch:
            on_epoch(epoch, loss)
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
