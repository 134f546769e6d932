"""HYDRA (Sehwag et al., NeurIPS 2020): learn which weights or channels to keep, then prune.

The weights of a pre-trained model stay frozen while one importance score per output channel
(``structured``) or per weight (``unstructured``) is learned by SGD under the (adversarial)
training loss. The forward pass uses only the top-k units by score; the top-k mask is a
straight-through estimator, so the gradient of the loss flows to the scores. The structured
mask multiplies each channel after its activation (ReLU), where a dropped channel still gets a
gradient (:func:`~robust_compress.pruning.masks.channel_targets`). Scores start from the
weights' importance, scaled as HYDRA's "scaled init" (``imp / max(imp) * sqrt(6 / fan_in)`` per
layer): Torch-Pruning's group L1 per channel (structured, the ranking of the ``l1`` criterion,
BatchNorm included) or ``|w|`` per weight (unstructured). As in HYDRA's official code, the
BatchNorm scales and shifts are trained with the scores (``train_bn``); the other weights stay
frozen.

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
from torch import Tensor, nn

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


def init_scores(
    layers: dict[str, nn.Module],
    form: str,
    init: str = "magnitude",
    *,
    model: nn.Module | None = None,
    example: Tensor | None = None,
) -> Scores:
    """Initial scores: per output channel (group L1) or per weight (``|w|``).

    Args:
        layers: The scored layers.
        form: ``structured`` (a score per output channel) or ``unstructured`` (per weight).
        init: ``magnitude``: HYDRA's scaled init of the weights' importance; ``random``:
            edge-popup's Kaiming-uniform scores, independent of the weights (unstructured only).
        model: The model of ``layers``; needed by the structured ``magnitude`` init, which
            takes Torch-Pruning's group L1 of each channel (the ``l1`` criterion's ranking).
        example: An input batch to trace ``model`` with (structured ``magnitude`` init).
    """
    scores: Scores = {}
    if init == "random":
        for m in layers.values():
            s = torch.empty_like(m.weight.detach())
            nn.init.kaiming_uniform_(s, a=math.sqrt(5))
            scores[m] = nn.Parameter(s)
        return scores
    if form == "structured":
        if model is None or example is None:
            raise ValueError("structured magnitude scores need the model and an example input")
        from robust_compress.adapters.torch_pruning.importance import group_importance

        importance = group_importance(model, layers.values(), example, "l1")
    else:
        importance = {m: m.weight.detach().abs() for m in layers.values()}
    for m in layers.values():
        mag, fan_in = importance[m].to(m.weight.device), m.weight[0].numel()
        s = mag / mag.max().clamp_min(1e-12) * math.sqrt(6.0 / fan_in)
        scores[m] = nn.Parameter(s.clone())
    return scores


@contextlib.contextmanager
def _frozen(model: nn.Module, trained: Collection[nn.Parameter] = ()) -> Iterator[None]:
    """Every parameter but ``trained`` frozen inside the block; the flags restored on exit."""
    flags = {p: p.requires_grad for p in model.parameters()}
    keep = set(trained)
    for p in flags:
        p.requires_grad_(p in keep)
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
        train_bn: Train the BatchNorm scales and shifts with the scores (same SGD, as HYDRA's
            official code does); False keeps them frozen.
    """

    form: str
    ratio: float
    epochs: int
    lr: float
    batch_size: int
    seed: int
    init: str = "magnitude"
    train_bn: bool = True


def batchnorm_affine(model: nn.Module) -> list[nn.Parameter]:
    """The scale and shift of every BatchNorm of ``model`` (those it has)."""
    kinds = (nn.BatchNorm1d, nn.BatchNorm2d)
    bns = [m for m in model.modules() if isinstance(m, kinds) and m.affine]
    return [p for m in bns for p in (m.weight, m.bias)]


def learn_scores(
    model: nn.Module,
    data,
    how: ScoreLearning,
    *,
    head: str,
    adversary=None,
    exclude: Collection[str] = (),
    losses: list[float] | None = None,
) -> tuple[dict[str, nn.Module], Scores]:
    """Learn HYDRA scores for ``model`` and return ``(layers, scores)``.

    Args:
        model: The pre-trained model; its Conv2d and Linear weights are left unchanged, its
            BatchNorm scales and shifts are trained with the scores when ``how.train_bn`` (and
            BatchNorm running statistics adapt to the masked subnetwork in train mode).
        data: Training data with ``batches(batch_size, shuffle, seed)`` and ``head(n)``.
        how: The form, ratio, epochs, learning rate, batch size, seed, init and BN switch.
        head: Name of the classifier head (never scored or pruned).
        adversary: ``perturb(model, x, y)``, a TRADES loss, or None; it attacks the masked model.
        exclude: Names of layers kept whole (a prune stage's ``ignore``): never scored.
        losses: If given, the mean score-learning loss of each epoch is appended to it.
    """
    layers = {n: m for n, m in prunable_layers(model, head).items() if n not in exclude}
    device = next(model.parameters()).device
    example = data.head(2).x.to(device)
    scores = init_scores(layers, how.form, how.init, model=model, example=example)
    if how.epochs == 0:
        return layers, scores
    mode = model.training
    trained = batchnorm_affine(model) if how.train_bn else []
    masking = masked(model, layers, scores, how.form, how.ratio, example=example)
    with _frozen(model, trained), masking:
        model.train()
        found = _sgd_on_scores(model, data, how, [*scores.values(), *trained], adversary)
    model.train(mode)
    if losses is not None:
        losses.extend(found)
    return layers, scores


def _sgd_on_scores(model: nn.Module, data, how: ScoreLearning, params: list, adversary):
    """SGD (momentum 0.9, cosine decay) on ``params``; return each epoch's mean loss."""
    opt = torch.optim.SGD(params, lr=how.lr, momentum=0.9)
    total = data.num_batches(how.batch_size, 1) * how.epochs
    step, means = 0, []
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
        means.append(running / max(seen, 1))
        log.info("hydra scores epoch %d/%d: loss %.4f", epoch + 1, how.epochs, means[-1])
    return means


def learn_for_stage(
    session, stage, head: str, form: str, adversary, init: str = "magnitude", losses=None
):
    """:func:`learn_scores` with a prune stage's settings; return ``(layers, scores)``.

    Args:
        session: The running session (its model, training data, batch size and seed).
        stage: The prune stage (its ``ratio``, ``score_epochs``, ``score_lr`` and, when the
            method has one, ``ignore``).
        head: Name of the classifier head ("" scores every Conv2d and Linear).
        form: ``structured`` or ``unstructured``.
        adversary: The stage's adversary, or None.
        init: How the scores start (see :func:`init_scores`).
        losses: If given, each score epoch's mean loss is appended to it.
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
        train_bn=getattr(stage, "score_bn", False),
    )
    kept = resolve_names(session.model, getattr(stage, "ignore", []))
    return learn_scores(
        session.model,
        session.train_data,
        how,
        head=head,
        adversary=adversary,
        exclude=kept,
        losses=losses,
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
    losses: list[float] = []
    if session.epoch == 0:  # after a resume the checkpoint holds the pruned model already
        layers, scores = learn_for_stage(
            session, stage, head_of(session), form, adversary, losses=losses
        )
        if form == "structured":
            prune_by_scores(session, stage, scores, "hydra")
        else:
            handles = apply_unstructured(layers, scores, stage.ratio)
    if stage.finetune_epochs:
        fit(session, label, stage.finetune_epochs, stage.optimizer, stage.lr_schedule, adversary)
    info = {"form": form, "score_epochs": stage.score_epochs, "score_bn": stage.score_bn}
    info["score_loss"] = losses  # per score epoch; empty after a resume
    if form == "unstructured":
        info["sparsity"] = finish_unstructured(layers, handles)
        sparse_report(session, "hydra", stage, info["sparsity"])
    session.results.setdefault("prune", {})["hydra"] = info
    session.model.eval()
