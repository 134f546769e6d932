"""HYDRA score learning (Sehwag et al., NeurIPS 2020): which weights or channels to keep.

The weights of a pre-trained model stay frozen while one importance score per output channel
(``structured``) or per weight (``unstructured``) is learned by SGD under the (adversarial)
training loss. The forward pass uses only the top-k units by score; the top-k mask is a
straight-through estimator, so the gradient of the loss flows to the scores. Scores start from
the weights' magnitudes ("scaled init": ``|w| / max|w| * sqrt(6 / fan_in)`` per layer).

Plain torch only: the structured form's channel removal is done by the Torch-Pruning adapter
(:class:`robust_compress.adapters.torch_pruning.importance.LearnedScoreImportance`).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Collection, Iterator

import torch
from torch import Tensor, nn

from robust_compress.training.loop import batch_loss

log = logging.getLogger(__name__)
Scores = dict[nn.Module, nn.Parameter]


class _TopK(torch.autograd.Function):
    """Mask keeping the ``keep`` largest values; the gradient passes straight through."""

    @staticmethod
    def forward(ctx, scores: Tensor, keep: int) -> Tensor:
        flat = scores.detach().flatten()
        mask = torch.zeros_like(flat)
        mask[torch.topk(flat, keep, sorted=False).indices] = 1.0
        return mask.view_as(scores)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, None


def keep_count(n: int, ratio: float) -> int:
    """Units kept out of ``n`` when a fraction ``ratio`` is pruned (at least one).

    The same count as Torch-Pruning's per-layer pruning (``int(n * (1 - ratio))``), so a mask
    learned here keeps exactly the channels that the pruner then keeps.
    """
    return max(1, int(n * (1 - ratio)))


def topk_mask(scores: Tensor, ratio: float) -> Tensor:
    """The straight-through top-k mask of ``|scores|`` (same shape), pruning ``ratio``.

    The absolute value is taken outside the straight-through step, so a negative score gets
    the gradient of ``|s|`` (raising the loss's wish to keep a unit raises ``|s|``, whatever the
    sign of ``s``), as in the edge-popup and HYDRA code.
    """
    return _TopK.apply(scores.abs(), keep_count(scores.numel(), ratio))


def prunable_layers(model: nn.Module, head: str) -> dict[str, nn.Module]:
    """Every Conv2d and Linear of ``model`` except the module named ``head``."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and name != head
    }


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


def _channel_targets(model: nn.Module, layers: dict[str, nn.Module]) -> dict[nn.Module, nn.Module]:
    """Where each layer's channel mask is applied: its BatchNorm if one follows, else itself."""
    order = list(model.named_modules())
    targets = {}
    for i, (_, m) in enumerate(order):
        if m not in layers.values():
            continue
        nxt = order[i + 1][1] if i + 1 < len(order) else None
        fits = isinstance(nxt, nn.BatchNorm2d) and nxt.num_features == m.weight.shape[0]
        targets[m] = nxt if fits else m
    return targets


@contextlib.contextmanager
def masked(model: nn.Module, layers: dict[str, nn.Module], scores: Scores, form: str, ratio: float):
    """Within the block, ``model`` computes with the top-k units by score only.

    Structured: forward hooks multiply each layer's output channels (after its BatchNorm) by
    the mask. Unstructured: forward pre-hooks swap each weight for ``weight * mask``. All hooks
    are removed on exit and the weights are left untouched.
    """
    handles = []
    if form == "structured":
        for layer, target in _channel_targets(model, layers).items():
            s = scores[layer]

            def hook(_m, _inp, out, s=s):
                shape = (1, -1) + (1,) * (out.dim() - 2)
                return out * topk_mask(s, ratio).view(shape)

            handles.append(target.register_forward_hook(hook))
    else:
        for layer in layers.values():
            handles.append(_swap_weight(layer, scores[layer], ratio))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _swap_weight(layer: nn.Module, s: nn.Parameter, ratio: float):
    """Run ``layer`` with ``weight * mask`` by calling its functional form with that weight."""
    original = layer.forward

    def forward(x):
        w = layer.weight * topk_mask(s, ratio)
        if isinstance(layer, nn.Conv2d):
            return layer._conv_forward(x, w, layer.bias)
        return nn.functional.linear(x, w, layer.bias)

    layer.forward = forward

    class _Handle:
        def remove(self) -> None:
            if layer.__dict__.get("forward") is forward:
                del layer.forward
            assert layer.forward.__func__ is original.__func__

    return _Handle()


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


def learn_scores(
    model: nn.Module,
    data,
    *,
    head: str,
    form: str,
    ratio: float,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    adversary=None,
    init: str = "magnitude",
    exclude: Collection[str] = (),
) -> tuple[dict[str, nn.Module], Scores]:
    """Learn HYDRA scores for ``model`` (weights frozen) and return ``(layers, scores)``.

    Args:
        model: The pre-trained model; its parameters are left unchanged (BatchNorm running
            statistics adapt to the masked subnetwork, as the model is in train mode).
        data: Training data with ``batches(batch_size, shuffle, seed)``.
        head: Name of the classifier head (never scored or pruned).
        form: ``structured`` (a score per output channel) or ``unstructured`` (per weight).
        ratio: Fraction of each layer's channels or weights pruned.
        epochs: Epochs of SGD on the scores (0: the scaled init is used as is).
        lr: SGD learning rate of the scores (momentum 0.9, cosine decay).
        batch_size: Examples per step.
        seed: Seed of the data order.
        adversary: ``perturb(model, x, y)``, a TRADES loss, or None; it attacks the masked model.
        init: How the scores start (see :func:`init_scores`).
        exclude: Names of layers kept whole (a prune stage's ``ignore``): never scored.
    """
    layers = {n: m for n, m in prunable_layers(model, head).items() if n not in exclude}
    scores = init_scores(layers, form, init)
    if epochs == 0:
        return layers, scores
    opt = torch.optim.SGD(list(scores.values()), lr=lr, momentum=0.9)
    total = data.num_batches(batch_size, 1) * epochs
    mode, step = model.training, 0
    with _frozen(model), masked(model, layers, scores, form, ratio):
        model.train()
        for epoch in range(epochs):
            running, seen = 0.0, 0
            for x, y in data.batches(batch_size, True, seed * 31 + epoch):
                for g in opt.param_groups:
                    g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
                loss = batch_loss(model, x, y, adversary)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                running, step, seen = running + loss.item(), step + 1, seen + 1
            log.info(
                "hydra scores epoch %d/%d: loss %.4f", epoch + 1, epochs, running / max(seen, 1)
            )
    model.train(mode)
    return layers, scores


def apply_unstructured(layers: dict[str, nn.Module], scores: Scores, ratio: float) -> list:
    """Zero the pruned weights for good and keep them zero; return the hooks' handles.

    Forward pre-hooks re-zero the pruned weights before every forward pass, so fine-tuning
    never uses them; call :func:`finish_unstructured` after the last optimizer step.
    """
    masks = {m: (topk_mask(scores[m].detach(), ratio) > 0) for m in layers.values()}
    return apply_masks(masks)


def apply_masks(masks: dict[nn.Module, Tensor]) -> list:
    """Zero each layer's weights outside its boolean mask and keep them zero; return handles.

    Forward pre-hooks re-zero the masked weights before every forward pass (an optimizer's
    momentum or weight decay cannot revive them); :func:`finish_unstructured` ends this.
    """
    handles = []
    for m, mask in masks.items():
        m.register_buffer("_hydra_mask", mask.to(m.weight.dtype), persistent=False)
        with torch.no_grad():
            m.weight.mul_(m._hydra_mask)
        handles.append(m.register_forward_pre_hook(_rezero))
    return handles


def _rezero(module: nn.Module, _inputs) -> None:
    with torch.no_grad():
        module.weight.mul_(module._hydra_mask)


def remove_masks(layers: dict[str, nn.Module], handles: list) -> None:
    """Remove the re-zeroing hooks and the mask buffers of :func:`apply_masks`."""
    for h in handles:
        h.remove()
    for m in layers.values():
        if hasattr(m, "_hydra_mask"):
            del m._hydra_mask


def finish_unstructured(layers: dict[str, nn.Module], handles: list) -> float:
    """Zero the pruned weights a last time, remove hooks and masks; return the sparsity."""
    for m in layers.values():
        _rezero(m, None)
    remove_masks(layers, handles)
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    return zeros / max(sum(m.weight.numel() for m in layers.values()), 1)
