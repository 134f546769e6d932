"""One-shot training job behind ``robust-compress train`` (and the foundation demo)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from robust_compress.attacks.adversaries import TorchPGD, make_adversary
from robust_compress.data.datasets import load_dataset
from robust_compress.engine.checkpoint import save_model
from robust_compress.errors import UserError
from robust_compress.models.specs import build_model, count_params
from robust_compress.training.loop import TrainConfig, evaluate, train

log = logging.getLogger(__name__)


@dataclass
class TrainJob:
    """What ``robust-compress train`` was asked to do (see the command's help)."""

    model: str
    data: str = "fashion-mnist"
    data_root: Path | None = None
    method: str = "pgd"
    epochs: int = 6
    steps: int = 5
    eps: float = 0.1
    lr: float = 0.1
    train_eps: float | None = None
    batch_size: int = 128
    train_subset: int | None = None
    test_subset: int | None = None
    eval_steps: int = 20
    seed: int = 0
    save: Path | None = None
    force: bool = False


def run_train_job(job: TrainJob, bars=None) -> dict:
    """Train as ``job`` says, then measure clean and PGD accuracy on the test set.

    Args:
        job: The job description.
        bars: Optional :class:`robust_compress.cli.common.Bars` for progress.

    Returns:
        ``{"clean", "robust", "n_test", "params"}``.
    """
    if job.save is not None and job.save.exists() and not job.force:
        raise UserError(f"{job.save} exists; pass --force to overwrite it or choose another path.")
    torch.manual_seed(job.seed)
    train_set = load_dataset(job.data, "train", root=job.data_root, subset=job.train_subset)
    test_set = load_dataset(job.data, "test", root=job.data_root, subset=job.test_subset)
    channels = train_set.input_shape[0]
    model = build_model(job.model, train_set.num_classes, channels)
    log.info("%s: %d parameters", job.model, count_params(model))
    cfg = TrainConfig(epochs=job.epochs, batch_size=job.batch_size, lr=job.lr, seed=job.seed)
    train_eps = 0.8 * job.eps if job.train_eps is None else job.train_eps
    adversary = make_adversary(job.method, train_eps, job.steps, job.seed)
    total = job.epochs * train_set.num_batches(job.batch_size)
    with _task(bars, f"train ({job.method})", total) as advance:
        train(
            model,
            train_set,
            cfg,
            adversary,
            on_batch=lambda e, b, loss: advance(f"loss {loss:.3f}"),
        )
    clean = evaluate(model, test_set)
    attack = TorchPGD(
        job.eps, steps=job.eval_steps, step=0.01, generator=torch.Generator().manual_seed(job.seed)
    )
    with _task(bars, f"PGD-{job.eval_steps} evaluation", test_set.num_batches(500)) as advance:
        robust = evaluate(model, test_set, attack, on_batch=lambda b: advance())
    if job.save is not None:
        save_model(
            model,
            job.save,
            job.model,
            train_set.num_classes,
            channels,
            force=job.force,
            extra={"input_shape": list(train_set.input_shape)},
        )
    return {
        "clean": clean,
        "robust": robust,
        "n_test": len(test_set),
        "params": count_params(model),
    }


def _task(bars, description: str, total: int):
    if bars is None:
        import contextlib

        return contextlib.nullcontext(lambda *a, **k: None)
    return bars.task(description, total)
