"""The epoch loop shared by the train, prune (fine-tuning) and quantize (QAT) stages."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from robust_compress.training import distributed
from robust_compress.training.loop import EpochPlan, train_epoch
from robust_compress.training.optim import build_optimizer, lr_factor

log = logging.getLogger(__name__)


@dataclass
class FitHooks:
    """What a stage adds to the epoch loop of :func:`fit` (all optional).

    Attributes:
        before_epoch: Called with the epoch number before it runs; returning True means
            parameter shapes changed, so the optimizer is rebuilt.
        phases: Epochs of each phase of the stage (they sum to ``epochs``); the learning-rate
            schedule starts again at each phase (default: one phase).
        penalty: Called with the epoch number; returns that epoch's per-batch loss term
            (a callable returning a tensor) or None.
        after_backward: Called with the epoch number; returns that epoch's
            after-``backward()`` callback (e.g. a gradient regulariser) or None.
    """

    before_epoch: Callable[[int], bool] | None = None
    phases: list[int] | None = None
    penalty: Callable[[int], Callable | None] | None = None
    after_backward: Callable[[int], Callable | None] | None = None


def fit(
    session,
    label: str,
    epochs: int,
    opt_cfg,
    schedule: str,
    adversary,
    hooks: FitHooks | None = None,
) -> None:
    """Train ``session.model`` for the stage's remaining epochs, checkpointing after each.

    Args:
        session: The running :class:`~robust_compress.engine.session.Session`; its ``epoch``
            says where to start (non-zero after ``--resume``).
        label: The stage's label, for hooks and messages.
        epochs: Epochs of this stage in all.
        opt_cfg: The stage's optimizer block.
        schedule: Learning-rate schedule name.
        adversary: ``perturb(model, x, y)``, a TRADES loss, or None.
        hooks: What the stage adds to the loop (see :class:`FitHooks`).

    Under torchrun each rank trains on its share of every epoch with ``batch_size / N``
    examples per step (the recipe's batch size stays the global one, so the number of
    steps and the learning-rate schedule do not change); the loss is computed through a
    DistributedDataParallel wrapper, rebuilt whenever pruning replaced parameters, while the
    adversary attacks the plain module.
    """
    hooks = hooks or FitHooks()
    data, world = session.train_data, distributed.world_size()
    bs = distributed.per_rank_batch(session.recipe.data.batch_size)
    per_epoch = data.num_batches(bs, world)
    session.hooks.on_stage_start(label, epochs, per_epoch)
    opt = build_optimizer(session.model, opt_cfg)
    net = _wrap(session, label)
    saved, session.progress.optimizer_state = session.progress.optimizer_state, None
    if saved is not None and session.epoch > 0:
        opt.load_state_dict(saved)
    for epoch in range(session.epoch, epochs):
        start = time.perf_counter()
        if hooks.before_epoch is not None and hooks.before_epoch(epoch):
            opt = build_optimizer(session.model, opt_cfg)
            net = None  # drop the old wrapper (and its gradient hooks) first
            net = _wrap(session, label)

        start_of_phase, length = phase_of(epoch, hooks.phases or [epochs])

        def lr_at(b: int, done: int = epoch - start_of_phase, length: int = length) -> float:
            return opt_cfg.lr * lr_factor(schedule, (done * per_epoch + b) / (length * per_epoch))

        plan = EpochPlan(
            batch_size=bs,
            seed=session.recipe.seed * 7919 + session.stage_index * 101 + epoch,
            lr_at=lr_at,
            epoch=epoch,
            where=f"stage {label}",
            shard=(distributed.rank(), world),
            on_batch=lambda e, b, loss: session.hooks.on_batch(label, e, b, loss),
            forward_model=net,
            penalty=hooks.penalty(epoch) if hooks.penalty else None,
            after_backward=hooks.after_backward(epoch) if hooks.after_backward else None,
            amp=session.amp_dtype,
        )
        loss = train_epoch(session.model, data, opt, plan, adversary)
        _end_epoch(session, label, (epoch, epochs), loss, start)
        session.checkpoint(opt)
    session.model.eval()


def _end_epoch(session, label: str, where: tuple[int, int], loss: float, start: float) -> None:
    epoch, epochs = where
    distributed.sync_buffers(session.model)  # rank 0's BatchNorm statistics everywhere
    loss = distributed.mean(loss)
    session.epoch = epoch + 1
    seconds = time.perf_counter() - start
    log.info("stage %s epoch %d/%d: loss %.4f, %.0f s", label, epoch + 1, epochs, loss, seconds)
    session.hooks.on_epoch(label, epoch, {"loss": loss})
    session.progress.seconds += seconds


def phase_of(epoch: int, phases: list[int]) -> tuple[int, int]:
    """The first epoch and the length of the phase that ``epoch`` belongs to."""
    start = 0
    for length in phases:
        if epoch < start + length:
            return start, length
        start += length
    raise ValueError(f"epoch {epoch} lies beyond the phases {phases}")


def _wrap(session, label: str):
    """What computes the loss: the model, in DDP under torchrun, compiled if the recipe asks."""
    net = session.model
    if distributed.is_distributed():
        gc.collect()  # an old wrapper's gradient hooks go with it; never let two reducers fire
        distributed.check_same_shapes(session.model, f"stage {label}")
        net = distributed.wrap(session.model)
    if session.recipe.compute.compile:
        import torch

        net = torch.compile(net)
    return net
