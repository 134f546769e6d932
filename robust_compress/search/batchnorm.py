"""BatchNorm statistics re-estimated after pruning, so that a candidate is judged fairly.

A group pruned without fine-tuning leaves the BatchNorm statistics after it measured on the
full layer's outputs, and much of the accuracy it loses is that mismatch, which the first steps
of fine-tuning remove. Re-estimating the running statistics on a few (attacked) training
batches, in train mode without gradients, measures what the pruned model can still do; Li et
al. (EagleEye, ECCV 2020) show that accuracy after this "adaptive BN" ranks pruned candidates
much as their fine-tuned accuracy does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def recalibrate(model: nn.Module, batches: Iterable[Tensor]) -> nn.Module:
    """Re-estimate every BatchNorm's running mean and variance on ``batches`` (in place).

    The statistics are reset and averaged over all batches (``momentum=None``); the model's
    weights and its train/eval mode are left as they were.
    """
    norms = [m for m in model.modules() if isinstance(m, _NORMS)]
    if not norms:
        return model
    saved = {m: (m.momentum, m.training) for m in norms}
    training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for x in batches:
        model(x)
    model.train(training)
    for m, (momentum, mode) in saved.items():
        m.momentum = momentum
        m.train(mode if training else False)
    return model


def calibrator(session, batches: int, attack) -> Callable[[nn.Module], nn.Module] | None:
    """Recalibrates a model on ``batches`` training batches attacked by ``attack`` (None: 0).

    The statistics of an adversarially trained model were gathered on adversarial inputs, so
    the batches are attacked first (against the pruned model, with its old statistics);
    statistics of clean inputs would cost a robust model robustness by themselves.

    Args:
        session: The running session (its training data, seed and threat).
        batches: Training batches to use; 0 turns recalibration off.
        attack: A resolved adversary config (the stage's ``val_attack``), or None for clean.
    """
    if batches == 0:
        return None
    from robust_compress.attacks.factory import build_adversary

    data, size = session.train_data, session.recipe.data.batch_size
    seed, norm = session.recipe.seed, session.recipe.threat.norm

    def calibrate(model: nn.Module) -> nn.Module:
        adversary = build_adversary(attack, norm, seed)
        model.eval()
        inputs = [
            x if adversary is None else adversary.perturb(model, x, y)
            for x, y in itertools.islice(data.batches(size, True, seed), batches)
        ]
        return recalibrate(model, inputs)

    return calibrate
