"""Masks over the weights or output channels of a model's Conv2d and Linear layers.

Shared by the methods that keep a model's shapes and zero part of it (HYDRA's unstructured
form, edge-popup, lottery tickets) and by those that learn or compute which units to keep
(HYDRA, ADMM): how many units a ratio keeps, the straight-through top-k mask, running a model
with masked units, and keeping pruned weights at zero while training goes on. Plain torch only.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

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


#: Activations with f(0) = 0: masking their output gives the forward pass of masking their input.
ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Hardtanh,
    nn.Mish,
)


def _next_modules(model: nn.Module, layers: dict[str, nn.Module]) -> dict[nn.Module, list]:
    """Each layer followed by the modules registered right after it: [BatchNorm], activation."""
    order = [m for _, m in model.named_modules()]
    chains = {}
    for i, m in enumerate(order):
        if m not in layers.values():
            continue
        chain = [m]
        nxt = order[i + 1] if i + 1 < len(order) else None
        if (
            isinstance(nxt, nn.BatchNorm2d | nn.BatchNorm1d)
            and nxt.num_features == m.weight.shape[0]
        ):
            chain.append(nxt)
            nxt = order[i + 2] if i + 2 < len(order) else None
        if isinstance(nxt, ACTIVATIONS):
            chain.append(nxt)
        chains[m] = chain
    return chains


def batchnorm_after(model: nn.Module, layers: dict[str, nn.Module]) -> dict[nn.Module, nn.Module]:
    """The BatchNorm registered right after each layer that has one (and fits its channels)."""
    chains = _next_modules(model, layers)
    return {m: c[1] for m, c in chains.items() if len(c) > 1 and not isinstance(c[1], ACTIVATIONS)}


def channel_targets(
    model: nn.Module, layers: dict[str, nn.Module], example: Tensor | None = None
) -> dict[nn.Module, nn.Module]:
    """Where each layer's channel mask is applied: after its activation when that is safe.

    A mask of 0 and 1 gives the same forward pass before or after an activation with
    f(0) = 0, but only after it does a dropped channel get a score gradient (before a ReLU
    a dropped channel enters it at exactly 0, where the ReLU's gradient is 0). The activation
    is the target when a probe run on ``example`` shows it runs once and takes exactly the
    output of the layer (or of the layer's BatchNorm), itself run once; otherwise (no example,
    a functional or shared activation, as in torchvision's ResNet blocks) the target is the
    layer's BatchNorm if one follows, else the layer.
    """
    chains = _next_modules(model, layers)
    calls = (
        _probe(model, example, {m for c in chains.values() for m in c})
        if example is not None
        else {}
    )
    targets = {}
    for layer, chain in chains.items():
        *before, last = chain
        fed = isinstance(last, ACTIVATIONS) and len(before) > 0
        if fed and _feeds(calls, before[-1], last):
            targets[layer] = last
        else:
            targets[layer] = before[-1] if fed else last
    return targets


def _feeds(calls: dict, source: nn.Module, act: nn.Module) -> bool:
    """True when ``source`` and ``act`` ran once each and ``act`` took ``source``'s output."""
    a, b = calls.get(source, []), calls.get(act, [])
    return len(a) == 1 and len(b) == 1 and b[0][0] is a[0][1]


def _probe(model: nn.Module, example: Tensor, watched: set) -> dict[nn.Module, list]:
    """Run ``model`` once on ``example`` (eval mode, no grad); each watched module's calls."""
    from robust_compress.models.state import preserved_state

    calls: dict[nn.Module, list] = {m: [] for m in watched}
    handles = [
        m.register_forward_hook(lambda mod, inp, out: calls[mod].append((inp[0], out)))
        for m in watched
    ]
    try:
        with preserved_state(model, eval_mode=True), torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return calls


@contextlib.contextmanager
def masked(
    model: nn.Module,
    layers: dict[str, nn.Module],
    scores: Scores,
    form: str,
    ratio: float,
    example: Tensor | None = None,
):
    """Within the block, ``model`` computes with the top-k units by score only.

    Structured: forward hooks multiply each layer's output channels by the mask where
    :func:`channel_targets` says (after the activation when ``example`` shows that is safe).
    Unstructured: each weight is swapped for ``weight * mask``. All hooks are removed on exit
    and the weights are left untouched.
    """
    handles = []
    if form == "structured":
        for layer, target in channel_targets(model, layers, example).items():
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
