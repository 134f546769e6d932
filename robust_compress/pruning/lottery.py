"""Lottery tickets under attack: iterative magnitude pruning with weight rewinding.

Frankle and Carbin (ICLR 2019) find sparse "winning tickets": train, remove the smallest
weights, rewind the survivors to their early values and train again, for several rounds.
Here every round trains adversarially. Pruning is unstructured and per layer: after round
``r`` of ``R``, each prunable layer keeps ``(1 - ratio) ** (r / R)`` of its weights (the
largest by magnitude among those still alive).

:func:`run` is the prune stage's ``lottery`` method: ``rounds`` rounds of ``round_epochs``
epochs under the stage's adversary, each ending in a prune and a rewind to the weights of
``rewind_epoch`` (or, with ``reinit``, after the last round, to a new draw of the model's own
initialisation, from its spec under another seed: the control), then one more round trains
the ticket. The masks and the rewind point resume from
``session.progress.method_state["lottery"]``.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from robust_compress.pruning.masks import (
    apply_masks,
    finish_unstructured,
    keep_count,
    prunable_layers,
    remove_masks,
)
from robust_compress.pruning.session_ops import fit_phases, head_of, initial_state, sparse_report
from robust_compress.training.fit import FitHooks

log = logging.getLogger(__name__)


def round_ratio(ratio: float, round_: int, rounds: int) -> float:
    """Fraction of each layer's weights pruned after ``round_`` of ``rounds`` rounds."""
    return 1.0 - (1.0 - ratio) ** (round_ / rounds)


def magnitude_masks(
    layers: dict[str, nn.Module], masks: dict[str, Tensor], ratio: float
) -> dict[str, Tensor]:
    """New masks keeping, per layer, the largest ``1 - ratio`` of weights still alive.

    Args:
        layers: The pruned layers, by name.
        masks: The current boolean masks by layer name (a missing one means all alive).
        ratio: Fraction of each layer's weights pruned after this round (cumulative).
    """
    out = {}
    for name, m in layers.items():
        w = m.weight.detach().abs()
        alive = masks.get(name, torch.ones_like(w, dtype=torch.bool))
        ranked = torch.where(alive, w, torch.full_like(w, -1.0)).flatten()
        keep = torch.topk(ranked, keep_count(w.numel(), ratio)).indices
        mask = torch.zeros(w.numel(), dtype=torch.bool)
        mask[keep] = True
        out[name] = mask.view_as(w) & alive
    return out


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    """A copy of the model's parameters and buffers, to rewind to."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def rewind(model: nn.Module, state: dict[str, Tensor], masks: dict[str, Tensor]) -> None:
    """Load ``state`` into ``model`` (parameters and BatchNorm statistics) and apply ``masks``."""
    model.load_state_dict(state)
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        modules[name].weight.mul_(mask.to(modules[name].weight.dtype))


def sparsity(masks: dict[str, Tensor]) -> float:
    """Fraction of masked-out weights over all masked layers."""
    total = sum(m.numel() for m in masks.values())
    return 1.0 - sum(int(m.sum()) for m in masks.values()) / max(total, 1)


class _Lottery:
    """Rounds of (adversarial) training, magnitude pruning and rewinding, with resume."""

    def __init__(self, session, stage):
        self.session, self.stage = session, stage
        self.layers = prunable_layers(session.model, head_of(session))
        self.state = session.progress.method_state.setdefault(
            "lottery", {"masks": {}, "rewind": None}
        )
        self.handles = self._apply()  # after a resume: the masks of the rounds done

    def before_epoch(self, epoch: int) -> bool:
        """Snapshot the rewind point; at each round's end prune and rewind (True: rebuild)."""
        stage, state = self.stage, self.state
        if epoch == stage.rewind_epoch and state["rewind"] is None:
            state["rewind"] = snapshot(self.session.model)
        if epoch == 0 or epoch % stage.round_epochs:
            return False
        done = epoch // stage.round_epochs
        ratio = round_ratio(stage.ratio, done, stage.rounds)
        remove_masks(self.layers, self.handles)
        state["masks"] = magnitude_masks(self.layers, state["masks"], ratio)
        last = done == stage.rounds
        source = self._random_state() if stage.reinit and last else state["rewind"]
        rewind(self.session.model, source, state["masks"])
        self.handles = self._apply()
        log.info("lottery round %d/%d: %.1f%% sparse", done, stage.rounds, 100 * ratio)
        return True

    def _random_state(self) -> dict:
        """The control's weights (``reinit``): a new draw of the model's own initialisation."""
        return initial_state(
            self.session, self.session.recipe.seed * 7 + 1000 + self.session.stage_index
        )

    def _apply(self) -> list:
        return apply_masks({self.layers[n]: m for n, m in self.state["masks"].items()})

    def finish(self) -> float:
        """Remove the hooks, zero the pruned weights a last time; return the sparsity."""
        masks = self.state["masks"]
        finish_unstructured({n: self.layers[n] for n in masks}, self.handles)
        return sparsity(masks)


def run(session, stage, label: str) -> None:
    """Iterative magnitude pruning with rewinding, every round trained adversarially."""
    ticket = _Lottery(session, stage)
    rounds = [stage.round_epochs] * (stage.rounds + 1)  # R pruning rounds, then the ticket
    fit_phases(session, stage, label, rounds, FitHooks(before_epoch=ticket.before_epoch))
    result = ticket.finish()
    session.progress.method_state.pop("lottery", None)
    sparse_report(session, "lottery", stage, result, rounds=stage.rounds)
    session.model.eval()
