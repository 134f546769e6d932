"""HYDRA (Sehwag et al., NeurIPS 2020): learn which weights or channels to keep, then prune.

The weights of a pre-trained model stay frozen while one importance score per output channel
(``structured``) or per weight (``unstructured``) is learned by SGD under the (adversarial)
training loss. The forward pass uses only the top-k units by score; the top-k mask is a
straight-through estimator, so the gradient of the loss flows to the scores. Scores start from
the weights' magnitudes ("scaled init": ``|w| / max|w| * sqrt(6 / fan_in)`` per layer).

:func:`run` is the prune stage's ``hydra`` method: learn the scores, remove the lowest-scoring
channels through the Torch-Pruning adapter (structured) or zero the lowest-scoring weights
(unstructured), then fine-tune under the stage's adversary.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from robust_compress.errors import UserError
from robust_compress.pruning.masks import (
    Scores,
    apply_unstructured,
    finish_unstructured,
    masked,
    prunable_layers,
)
from robust_compress.pruning.session_ops import head_of, prune_by_scores, sparse_report
from robust_compress.training.fit import fit
from robust_compress.training.loop import batch_loss

log = logging.getLogger(__name__)


def init_scores(layers: dict[str, nn.Module], form: str, init: str = "magnitude") -> Scores:
    """Initial scores: per output channel (L1 norm) or per weight (``|w|``).

    Args:
        layers: The scored layers.
        form: ``structured`` (a score per output channel) or ``unstructured`` (per weight).
        init: ``magnitude``: HYDRA's scaled init; ``random``: edge-popup's Kaiming-uniform
            scores, independent of the weights (unstructured only).
    """
    scores: Scores = {}
    if init == "random":
        for m in layers.values():
            s = torch.empty_like(m.weight.detach())
            nn.init.kaiming_uniform_(s, a=math.sqrt(5))
            scores[m] = nn.Parameter(s)
        return scores
    for m in layers.values():
        w = m.weight.detach()
        mag = w.abs().flatten(1).sum(1) if form == "structured" else w.abs()
        fan_in = w[0].numel()
        s = mag / mag.max().clamp_min(1e-12) * math.sqrt(6.0 / fan_in)
        scores[m] = nn.Parameter(s.clone())
    return scores


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    flags = {p: p.requires_grad for p in model.parameters()}
    for p in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)


@dataclass(frozen=True)
class ScoreLearning:
    """How HYDRA's scores are learned.

    Attributes:
        form: ``structured`` (a score per output channel) or ``unstructured`` (per weight).
        ratio: Fraction of each layer's channels or weights pruned.
        epochs: Epochs of SGD on the scores (0: the scaled init is used as is).
        lr: SGD learning rate of the scores (momentum 0.9, cosine decay).
        batch_size: Examples per step.
        seed: Seed of the data order.
        init: How the scores start (see :func:`init_scores`).
    """

    form: str
    ratio: float
    epochs: int
    lr: float
    batch_size: int
    seed: int
    init: str = "magnitude"


def learn_scores(
    model: nn.Module,
    data,
    how: ScoreLearning,
    *,
    head: str,
    adversary=None,
    exclude: Collection[str] = (),
) -> tuple[dict[str, nn.Module], Scores]:
    """Learn HYDRA scores for ``model`` (weights frozen) and return ``(layers, scores)``.

    Args:
        model: The pre-trained model; its parameters are left unchanged (BatchNorm running
            statistics adapt to the masked subnetwork, as the model is in train mode).
        data: Training data with ``batches(batch_size, shuffle, seed)``.
        how: The form, ratio, epochs, learning rate, batch size, seed and init.
        head: Name of the classifier head (never scored or pruned).
        adversary: ``perturb(model, x, y)``, a TRADES loss, or None; it attacks the masked model.
        exclude: Names of layers kept whole (a prune stage's ``ignore``): never scored.
    """
    layers = {n: m for n, m in prunable_layers(model, head).items() if n not in exclude}
    scores = init_scores(layers, how.form, how.init)
    if how.epochs == 0:
        return layers, scores
    mode = model.training
    with _frozen(model), masked(model, layers, scores, how.form, how.ratio):
        model.train()
        _sgd_on_scores(model, data, how, scores, adversary)
    model.train(mode)
    return layers, scores


def _sgd_on_scores(model: nn.Module, data, how: ScoreLearning, scores: Scores, adversary) -> None:
    opt = torch.optim.SGD(list(scores.values()), lr=how.lr, momentum=0.9)
    total = data.num_batches(how.batch_size, 1) * how.epochs
    step = 0
    for epoch in range(how.epochs):
        running, seen = 0.0, 0
        for x, y in data.batches(how.batch_size, True, how.seed * 31 + epoch, augment=True):
            for g in opt.param_groups:
                g["lr"] = how.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = batch_loss(model, x, y, adversary)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running, step, seen = running + loss.item(), step + 1, seen + 1
        mean = running / max(seen, 1)
        log.info("hydra scores epoch %d/%d: loss %.4f", epoch + 1, how.epochs, mean)


def learn_for_stage(session, stage, head: str, form: str, adversary, init: str = "magnitude"):
    """:func:`learn_scores` with a prune stage's settings; return ``(layers, scores)``.

    Args:
        session: The running session (its model, training data, batch size and seed).
        stage: The prune stage (its ``ratio``, ``score_epochs``, ``score_lr`` and, when the
            method has one, ``ignore``).
        head: Name of the classifier head ("" scores every Conv2d and Linear).
        form: ``structured`` or ``unstructured``.
        adversary: The stage's adversary, or None.
        init: How the scores start (see :func:`init_scores`).
    """
    from robust_compress.models.layer_names import resolve_names

    how = ScoreLearning(
        form=form,
        ratio=stage.ratio,
        epochs=stage.score_epochs,
        lr=stage.score_lr,
        batch_size=session.recipe.data.batch_size,
        seed=session.recipe.seed + session.stage_index,
        init=init,
    )
    kept = resolve_names(session.model, getattr(stage, "ignore", []))
    return learn_scores(
        session.model, session.train_data, how, head=head, adversary=adversary, exclude=kept
    )


def run(session, stage, label: str) -> None:
    """HYDRA: learn scores under the stage's adversary, prune by them, fine-tune adversarially."""
    form = stage.hydra_form
    if session.epoch > 0 and form == "unstructured":
        raise UserError(
            f"stage {label}: unstructured hydra cannot resume mid-fine-tuning (its mask is not "
            "checkpointed); run the recipe again without --resume."
        )
    adversary = session.adversary_for(session.stage_index, stage.adversary)
    handles: list = []
    if session.epoch == 0:  # after a resume the checkpoint holds the pruned model already
        layers, scores = learn_for_stage(session, stage, head_of(session), form, adversary)
        if form == "structured":
            prune_by_scores(session, stage, scores, "hydra")
        else:
            handles = apply_unstructured(layers, scores, stage.ratio)
    if stage.finetune_epochs:
        fit(session, label, stage.finetune_epochs, stage.optimizer, stage.lr_schedule, adversary)
    info = {"form": form, "score_epochs": stage.score_epochs}
    if form == "unstructured":
        info["sparsity"] = finish_unstructured(layers, handles)
        sparse_report(session, "hydra", stage, info["sparsity"])
    session.results.setdefault("prune", {})["hydra"] = info
    session.model.eval()
