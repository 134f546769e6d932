"""A plain-PyTorch training loop: natural, FGSM-RS and PGD-k adversarial training.

The adversary is anything with ``perturb(model, x, y) -> x_adv`` (see
:class:`robust_compress.protocols.Adversary`): the reference attacks below or the ART adapter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robust_compress.attacks.torch_attacks import correct
from robust_compress.data.datasets import TensorData
from robust_compress.devices import autocast
from robust_compress.errors import RunError
from robust_compress.training.distributed import all_finite
from robust_compress.training.optim import build_optimizer, lr_factor

log = logging.getLogger(__name__)
METHODS = ("natural", "fgsm_rs", "pgd")


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


BatchHook = Callable[[int, int, float], None]


def batch_loss(
    model: nn.Module, x: Tensor, y: Tensor, adversary=None, attack_model: nn.Module | None = None
) -> Tensor:
    """Training loss on one batch: TRADES, cross-entropy on adversarial examples, or clean.

    ``attack_model`` (default ``model``) is what the adversary attacks: the plain module when
    ``model`` is its DistributedDataParallel wrapper.
    """
    target = model if attack_model is None else attack_model
    if hasattr(adversary, "loss"):  # a training loss of its own: TRADES, distillation
        return adversary.loss(model, x, y, attack_model=target)
    if adversary is not None:
        x = adversary.perturb(target, x, y)
    return F.cross_entropy(model(x), y)


@dataclass
class EpochPlan:
    """How one epoch of :func:`train_epoch` runs.

    Attributes:
        batch_size: Examples per step (per rank under torchrun).
        seed: Seed of this epoch's data order.
        lr_at: Learning rate for the batch index within this epoch.
        epoch: The epoch number, for hooks and messages.
        where: Names the stage in the message of a non-finite loss.
        amp: Autocast dtype of the forward and backward passes (adversary included), or
            None for float32; float16 adds a gradient scaler.
        shard: ``(rank, world)``: train on this rank's share of the epoch (see
            :meth:`TensorData.batches`).
        on_batch: Called as ``on_batch(epoch, batch, loss)`` after each step.
        forward_model: Computes the loss (the model's DistributedDataParallel wrapper); the
            adversary always attacks the model itself.
        penalty: Returns a term added to every batch's loss (e.g. the ADMM penalty); the
            reported loss includes it.
        after_backward: Called after ``loss.backward()`` and before ``opt.step()`` (e.g. a
            group-norm regulariser that adds to the gradients).
    """

    batch_size: int
    seed: int
    lr_at: Callable[[int], float]
    epoch: int = 0
    where: str = "training"
    shard: tuple[int, int] = (0, 1)
    on_batch: BatchHook | None = None
    forward_model: nn.Module | None = None
    penalty: Callable[[], Tensor] | None = None
    after_backward: Callable[[], None] | None = None
    amp: torch.dtype | None = None


def train_epoch(
    model: nn.Module,
    data: TensorData,
    opt: torch.optim.Optimizer,
    plan: EpochPlan,
    adversary=None,
) -> float:
    """Run one epoch of (adversarial) training and return the mean loss.

    Args:
        model: The model, trained in place.
        data: Training data, shuffled with ``plan.seed``.
        opt: The optimizer over ``model``'s parameters.
        plan: Batch size, seed, learning rate and hooks of the epoch.
        adversary: ``perturb(model, x, y)``, a loss object (``Trades``, ``Distill``) or None.

    Raises:
        RunError: The loss or a weight became NaN or infinite.
    """
    model.train()
    total = 0.0
    n = 0
    net = model if plan.forward_model is None else plan.forward_model
    rank, world = plan.shard
    batches = data.batches(plan.batch_size, True, plan.seed, rank=rank, world=world, augment=True)
    scaler = torch.amp.GradScaler() if plan.amp == torch.float16 else None
    for b, (x, y) in enumerate(batches):
        for group in opt.param_groups:
            group["lr"] = plan.lr_at(b)
        with autocast(x.device, plan.amp):
            loss = batch_loss(net, x, y, adversary, attack_model=model)
            if plan.penalty is not None:
                loss = loss + plan.penalty()
        _check_finite_loss(loss, plan, b)
        opt.zero_grad(set_to_none=True)
        _step(loss, opt, plan.after_backward, scaler)
        value = loss.item()
        total += value
        n += 1
        if plan.on_batch:
            plan.on_batch(plan.epoch, b, value)
    _check_finite_weights(model, plan.where, plan.epoch)
    return total / max(n, 1)


def _step(loss: Tensor, opt, after_backward: Callable[[], None] | None, scaler) -> None:
    """Backward and optimizer step (through the fp16 gradient scaler when there is one)."""
    if scaler is None:
        loss.backward()
        if after_backward is not None:
            after_backward()
        opt.step()
        return
    scaler.scale(loss).backward()
    scaler.unscale_(opt)  # true gradients for the regulariser and the finite check
    if after_backward is not None:
        after_backward()
    scaler.step(opt)
    scaler.update()


def _check_finite_loss(loss: Tensor, plan: EpochPlan, batch: int) -> None:
    rank, world = plan.shard
    if not all_finite(loss):  # on every rank, so that all ranks stop together
        where_rank = f" (rank {rank}'s loss: {loss.item()})" if world > 1 else ""
        raise RunError(
            f"{plan.where}: loss is {'not finite' if world > 1 else loss.item()} at epoch "
            f"{plan.epoch}, batch {batch}{where_rank}."
        )


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
        adversary: Object with ``perturb(model, x, y)``, a loss object with
            ``loss(model, x, y, attack_model)`` (TRADES, distillation), or None.
        on_batch: Called as ``on_batch(epoch, batch, loss)`` after each step.
        on_epoch: Called as ``on_epoch(epoch, mean_loss)`` after each epoch.

    Returns:
        The trained model, in eval mode.

    Raises:
        RunError: The loss became NaN or infinite.
    """
    opt = build_optimizer(model, cfg)
    per_epoch = data.num_batches(cfg.batch_size)
    total = cfg.epochs * per_epoch
    for epoch in range(cfg.epochs):

        def lr_at(b: int, epoch: int = epoch) -> float:
            return cfg.lr * lr_factor(cfg.schedule, (epoch * per_epoch + b) / total)

        plan = EpochPlan(cfg.batch_size, cfg.seed + epoch, lr_at, epoch, on_batch=on_batch)
        loss = train_epoch(model, data, opt, plan, adversary)
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
