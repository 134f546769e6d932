"""Importance criteria for the structured pruner, on Torch-Pruning's importance classes.

Part of the Torch-Pruning adapter (see :mod:`robust_compress.adapters.torch_pruning.pruner`).

The criteria a pruner can name are the entries of
:data:`~robust_compress.registry.IMPORTANCE`: each entry's item builds the
Torch-Pruning importance object (the ``build_*`` functions below for the built-in ones), and
its meta says whether it needs gradients (``gradients``) and an adversary (``needs_adversary``),
so a criterion registered by a plugin is used like a built-in one.

Taylor importance needs loss gradients. Torch-Pruning reads them from ``param.grad``, which
the caller's training loop owns (and which an attack may wipe). Here gradients are computed
with :func:`torch.autograd.grad` into a private store and shown to the library only while it
scores a group, so the caller's ``.grad`` is never touched.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import Tensor, nn

from robust_compress.errors import UserError
from robust_compress.models.state import preserved_state
from robust_compress.registry import IMPORTANCE

log = logging.getLogger(__name__)

Batches = Callable[[], Iterable[tuple[Tensor, Tensor]]]


class StoredGradTaylorImportance(tp.importance.TaylorImportance):
    """First-order Taylor importance |w * dL/dw| on gradients kept in :attr:`grads`."""

    def __init__(self) -> None:
        super().__init__()
        self.grads: dict[nn.Parameter, Tensor] = {}

    def __call__(self, group):
        """Score ``group`` with the stored gradients; parameter ``.grad`` is left as found."""
        params = {
            p
            for dep, _ in group
            if isinstance(dep.target.module, nn.Module)
            for p in dep.target.module.parameters(recurse=False)
        }
        saved = {p: p.grad for p in params}
        try:
            for p in params:
                p.grad = self.grads.get(p, torch.zeros_like(p))
            return super().__call__(group)
        finally:
            for p, grad in saved.items():
                p.grad = grad


class SeededRandomImportance(tp.importance.RandomImportance):
    """Random importance drawn from a private generator, so runs repeat under a seed."""

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def __call__(self, group, **kwargs):
        """Return one uniform random score per channel of ``group``."""
        _, idxs = group[0]
        return torch.rand(len(idxs), generator=self.generator)


def build_l1(seed: int = 0) -> tp.importance.Importance:
    """The ``l1`` criterion: L1 norm of each channel's weights."""
    return tp.importance.MagnitudeImportance(p=1)


def build_l2(seed: int = 0) -> tp.importance.Importance:
    """The ``l2`` criterion: L2 norm of each channel's weights."""
    return tp.importance.MagnitudeImportance(p=2)


def build_taylor(seed: int = 0) -> tp.importance.Importance:
    """The ``taylor`` and ``robust_taylor`` criteria: |w * dL/dw| on stored gradients."""
    return StoredGradTaylorImportance()


def build_bn_scale(seed: int = 0) -> tp.importance.Importance:
    """The ``bn_scale`` criterion: |gamma| of the BatchNorm after each channel."""
    return tp.importance.BNScaleImportance()


def build_lamp(seed: int = 0) -> tp.importance.Importance:
    """The ``lamp`` criterion (layer-adaptive magnitude, p = 2)."""
    return tp.importance.LAMPImportance(p=2)


def build_random(seed: int = 0) -> tp.importance.Importance:
    """The ``random`` criterion, drawn from a generator seeded by ``seed``."""
    return SeededRandomImportance(seed)


def make_importance(name: str, seed: int = 0) -> tp.importance.Importance:
    """Return the Torch-Pruning importance of the criterion registered as ``name``.

    Args:
        name: An entry of :data:`~robust_compress.registry.IMPORTANCE`.
        seed: Seed of the criteria that draw at random.

    Raises:
        UserError: ``name`` is unknown; the message lists close matches.
    """
    return IMPORTANCE.get(name)(seed)


def loss_gradients(
    model: nn.Module, batches: Batches, max_batches: int, adversary=None
) -> dict[nn.Parameter, Tensor]:
    """Sum the cross-entropy gradients of ``model`` over up to ``max_batches`` batches.

    Each batch ``(x, y)`` is first replaced by ``adversary.perturb(model, x, y)`` when an
    adversary is given (the attack runs first, on the model as the caller left it). Gradients
    are then taken in eval mode (BatchNorm statistics untouched, dropout off) with every
    parameter differentiable; modes, ``requires_grad`` flags and ``.grad`` are as found after.

    Raises:
        UserError: ``batches()`` yielded nothing.
    """
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    seen = 0
    for x, y in itertools.islice(batches(), max_batches):
        if adversary is not None:
            x = adversary.perturb(model, x, y).detach()
        with _differentiable_eval(model):
            loss = F.cross_entropy(model(x), y)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        for acc, g in zip(total, grads, strict=True):
            if g is not None:
                acc.add_(g)
        seen += 1
    if seen == 0:
        raise UserError("the pruner's batches() yielded no (x, y) batch for Taylor importance.")
    log.debug("Taylor gradients from %d batch(es)%s", seen, " (adversarial)" if adversary else "")
    return dict(zip(params, total, strict=True))


@contextlib.contextmanager
def _differentiable_eval(model: nn.Module) -> Iterator[None]:
    """Eval mode with every parameter requiring grad; both restored on exit."""
    with preserved_state(model, eval_mode=True, requires_grad=True):
        yield


class LearnedScoreImportance(tp.importance.Importance):
    """Per-channel scores learned elsewhere (HYDRA), looked up by the group's root layer.

    Args:
        scores: Maps a layer (Conv2d or Linear) to one score per output channel. A group whose
            root layer has no score falls back to its L1 magnitude.
    """

    def __init__(self, scores: dict[nn.Module, Tensor]) -> None:
        self.scores = {m: s.detach().abs() for m, s in scores.items()}
        self.fallback = tp.importance.MagnitudeImportance(p=1)

    @torch.no_grad()
    def __call__(self, group, **kwargs):
        """Return the learned score of each channel of ``group``'s root layer."""
        dep, idxs = group[0]
        scores = self.scores.get(dep.target.module)
        if scores is None or not _prunes_out_channels(dep):
            return self.fallback(group)
        return scores[list(idxs)].clone()


def _prunes_out_channels(dep) -> bool:
    return dep.handler in (
        tp.prune_conv_out_channels,
        tp.prune_linear_out_channels,
    )


@torch.no_grad()
def group_importance(
    model: nn.Module, layers: Iterable[nn.Module], example: Tensor, name: str = "l1", seed: int = 0
) -> dict[nn.Module, Tensor]:
    """Torch-Pruning's importance of each output channel of each layer, over its whole group.

    The group of a layer's output channels holds what pruning them removes with them: the
    BatchNorm after it (scale and shift) and the input channels of the layers it feeds. The
    scores are those the structured pruner ranks by for ``name`` (``l1``: group L1).

    Args:
        model: The model the layers belong to (traced once on ``example``).
        layers: Conv2d or Linear layers of ``model``.
        example: An input batch for tracing.
        name: A criterion of :data:`~robust_compress.registry.IMPORTANCE` that needs no
            gradients.
        seed: Seed of criteria that draw at random.
    """
    from robust_compress.adapters.torch_pruning.state import traceable

    importance = make_importance(name, seed)
    with traceable(model), torch.enable_grad():
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    scores = {}
    for m in layers:
        fn = (
            tp.prune_conv_out_channels if isinstance(m, nn.Conv2d) else tp.prune_linear_out_channels
        )
        group = graph.get_pruning_group(m, fn, idxs=list(range(m.weight.shape[0])))
        scores[m] = importance(group).detach().float()
    return scores
