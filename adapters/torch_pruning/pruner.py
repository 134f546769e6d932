"""Torch-Pruning adapter: structured (channel) pruning of any torchvision-style CNN.

:class:`StructuredPruner` satisfies :class:`robust_compress.protocols.Pruner`. It builds
Torch-Pruning's dependency graph of the model, so coupled layers (BatchNorm, residual adds,
depthwise convolutions, the Linear after a flatten) lose the same channels and the model
really gets smaller and faster. Ignored layers come by name or ``re:`` pattern; the classifier
head is always ignored.

Example:
    >>> pruner = StructuredPruner("l1", ratio=0.5, steps=3)
    >>> pruner.prepare(model, torch.zeros(1, 1, 28, 28))
    >>> while not pruner.done:
    ...     if pruner.step():
    ...         optimizer = make_optimizer(model)  # parameter objects were replaced
    ...     finetune(model, optimizer)
    >>> save_pruned(model, Path("pruned.pt"))
    >>> restored = load_pruned(build_model("builtin:cnn_small"), Path("pruned.pt"))

Robust sparse training: with ``sparsity_reg > 0``, call :meth:`StructuredPruner.regularize`
between ``loss.backward()`` and ``optimizer.step()`` of the (adversarial) training before
pruning; the group-norm penalty shrinks the weak channels so removing them costs little.

What the library disturbs is restored here: tracing leaves the model in eval mode (the mode
of every module is put back); tracing misses leading layers whose parameters are frozen (every
parameter requires grad while tracing); pruning replaces parameter objects, and the new ones
require grad (flags are put back by name). Taylor gradients never touch the caller's ``.grad``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch_pruning as tp
from torch import Tensor, nn

from robust_compress.adapters.torch_pruning.graph import (
    attention_heads,
    build_pruner,
    check_runs,
    group_roots,
    sync_attention,
)
from robust_compress.adapters.torch_pruning.importance import (
    LearnedScoreImportance,
    loss_gradients,
    make_importance,
)
from robust_compress.adapters.torch_pruning.options import (
    PrunerOptions,
    fact,
    ratio_overrides,
    validate,
)
from robust_compress.adapters.torch_pruning.sparse import (
    SparsePruner,
    check_sparsity_reg,
    regularize,
)
from robust_compress.adapters.torch_pruning.state import (
    count_macs_params,
    load_pruned,
    pruned_state,
    pruning_record,
    restore_pruned,
    save_pruned,
    set_pruning_record,
    traceable,
)
from robust_compress.errors import UserError
from robust_compress.models.layer_names import find_head, resolve_names

__all__ = [
    "StructuredPruner",
    "count_macs_params",
    "load_pruned",
    "pruned_state",
    "restore_pruned",
    "save_pruned",
]
log = logging.getLogger(__name__)


class StructuredPruner:
    """Removes output channels of convolutions and Linear layers, one-shot or iteratively.

    Args:
        importance: A criterion of :data:`~robust_compress.registry.IMPORTANCE`: ``l1``,
            ``l2``, ``taylor`` (|w * dL/dw|), ``robust_taylor`` (on adversarial examples),
            ``bn_scale`` (BatchNorm gamma), ``lamp``, ``random``, or one a plugin registered.
        ratio: Fraction of channels removed by the end, in [0, 1).
        steps: Number of :meth:`step` calls to reach ``ratio`` (linear schedule).
        global_pruning: Rank channels across all layers instead of within each layer.
        ignore: Module names or ``re:PATTERN`` regular expressions (whole-name match) whose
            output channels are kept; the classifier head is always kept.
        round_to: Keep channel counts multiples of this number.
        adversary: Object with ``perturb(model, x, y)``; for criteria with ``needs_adversary``.
        batches: Callable returning an iterable of ``(x, y)``; for criteria with ``gradients``.
        grad_batches: Batches whose gradients are summed per step for those criteria.
        seed: Seed of the ``random`` criterion.
        scores: Per-channel scores learned elsewhere (HYDRA), keyed by layer: when given they
            rank the channels instead of ``importance``.
        sparsity_reg: Strength of the group-norm (DepGraph) regularisation that
            :meth:`regularize` adds during training before pruning; 0 turns it off. Needs
            importance ``l1``, ``l2`` or ``lamp`` and no ``scores``.
        layer_ratios: Ratios of single groups by root layer name (see :meth:`groups`),
            overriding ``ratio`` for them; ``ratio=0`` prunes only these.

    Everything after ``steps`` is a keyword of ``**options`` (:class:`PrunerOptions`).

    Raises:
        UserError: An option is invalid, unknown or missing (the message says which).
    """

    def __init__(self, importance: str = "l1", ratio: float = 0.5, steps: int = 1, **options: Any):
        o = PrunerOptions.from_keywords(options)
        validate(importance, ratio, steps, o)
        self.sparsity_reg = check_sparsity_reg(o.sparsity_reg, importance, o.scores)
        self.importance = importance
        self.ratio = float(ratio)
        self.steps = int(steps)
        self.global_pruning = bool(o.global_pruning)
        self.ignore = [o.ignore] if isinstance(o.ignore, str) else list(o.ignore)
        self.round_to = o.round_to
        self.adversary = o.adversary
        self.batches = o.batches
        self.grad_batches = int(o.grad_batches)
        self.seed = int(o.seed)
        self.scores = o.scores
        self.layer_ratios = dict(o.layer_ratios or {})
        self.steps_taken = 0
        self._model: nn.Module | None = None
        self._pruner: tp.pruner.BasePruner | None = None
        self._before: tuple[int, int] = (0, 0)
        self._ignored: list[str] = []

    def resolve_ignored(self, model: nn.Module, example_inputs: Tensor | None = None) -> list[str]:
        """Return the names of the modules kept whole: the user's ``ignore`` plus the head.

        Args:
            model: The model the names refer to.
            example_inputs: If given, the head is found by running the model once.

        Raises:
            UserError: A pattern matches no module (the message lists close names).
        """
        chosen = set(resolve_names(model, self.ignore))
        chosen.add(find_head(model, example_inputs))
        return [n for n, _ in model.named_modules() if n in chosen]

    def prepare(self, model: nn.Module, example_inputs: Tensor) -> None:
        """Bind to ``model``: resolve ignored layers, count MACs and build the graph.

        With ``sparsity_reg > 0`` the library's regularising pruner is built (same options).
        The train/eval mode of every module is as given afterwards.
        """
        self._ignored = self.resolve_ignored(model, example_inputs)
        modules = dict(model.named_modules())
        self._before = count_macs_params(model, example_inputs)
        self._example = example_inputs
        self._base_history = pruning_record(model)["history"]
        sparse = {"reg": self.sparsity_reg} if self.sparsity_reg > 0 else {}
        with traceable(model):
            self._pruner = build_pruner(
                SparsePruner if sparse else tp.pruner.BasePruner,
                model,
                example_inputs,
                importance=(
                    LearnedScoreImportance(self.scores)
                    if self.scores is not None
                    else make_importance(self.importance, self.seed)
                ),
                global_pruning=self.global_pruning,
                pruning_ratio=self.ratio,
                pruning_ratio_dict=ratio_overrides(
                    model, self.ratio, self.layer_ratios, self._ignored, self.global_pruning
                ),
                iterative_steps=self.steps,
                ignored_layers=[modules[n] for n in self._ignored],
                round_to=self.round_to,
                num_heads=attention_heads(model),
                **sparse,
            )
        self._model = model
        self.steps_taken = 0
        log.info(
            "pruner ready: %s, ratio %.2f in %d step(s), %s, ignoring %s; %d params, %d MACs",
            self.importance,
            self.ratio,
            self.steps,
            "global" if self.global_pruning else "per layer",
            ", ".join(self._ignored),
            self._before[1],
            self._before[0],
        )

    def groups(self) -> list[dict[str, Any]]:
        """The groups of layers pruned together, by root layer (see ``graph.group_roots``)."""
        if self._pruner is None or self._model is None:
            raise UserError("call StructuredPruner.prepare(model, example_inputs) before groups().")
        return group_roots(self._pruner, self._model)

    @property
    def done(self) -> bool:
        """True once all ``steps`` steps have been taken."""
        return self.steps_taken >= self.steps

    def step(self) -> bool:
        """Prune one step towards ``ratio``.

        Returns:
            True when parameter shapes changed: parameter objects were replaced, so rebuild
            the optimizer. False when nothing was pruned (or all steps were already taken).

        Raises:
            UserError: :meth:`prepare` was not called first.
        """
        if self._pruner is None or self._model is None:
            raise UserError("call StructuredPruner.prepare(model, example_inputs) before step().")
        if self.done:
            log.warning("all %d pruning steps were taken; step() does nothing", self.steps)
            return False
        model = self._model
        if fact(self.importance, "gradients"):
            self._load_gradients(model)
        shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
        with traceable(model):
            self._pruner.step()
        sync_attention(model)
        check_runs(model, self._example)
        self._pruner.update_regularizer()  # its groups held the old channel indices
        self.steps_taken += 1
        history = self._base_history + self._pruner.pruning_history()
        set_pruning_record(model, history, list(self._example.shape))
        changed = shapes != {n: tuple(p.shape) for n, p in model.named_parameters()}
        if not changed and self.ratio > 0:
            log.warning(
                "pruning step %d removed no channel%s",
                self.steps_taken,
                " (global ranking prunes nothing when scores tie, e.g. bn_scale on an untrained"
                " model whose BatchNorm scales are all 1)"
                if self.global_pruning
                else "",
            )
        log.info(
            "pruning step %d/%d: %d parameters",
            self.steps_taken,
            self.steps,
            sum(p.numel() for p in model.parameters()),
        )
        return changed

    def regularize(self) -> None:
        """Add the group-norm penalty's gradient to the bound model's ``.grad``.

        Call it after ``loss.backward()`` and before ``optimizer.step()``; it also works after
        :meth:`step`. Modes, ``requires_grad`` flags and weights are left as found.

        Raises:
            UserError: ``sparsity_reg`` is 0, :meth:`prepare` was not called, or the model has
                no gradients yet.
        """
        if self.sparsity_reg == 0:
            raise UserError(
                "StructuredPruner.regularize() needs sparsity_reg > 0: pass e.g."
                " StructuredPruner(..., sparsity_reg=1e-4), or do not call regularize()."
            )
        if self._pruner is None or self._model is None:
            raise UserError(
                "call StructuredPruner.prepare(model, example_inputs) before regularize()."
            )
        assert isinstance(self._pruner, SparsePruner)
        regularize(self._pruner, self._model)

    def _load_gradients(self, model: nn.Module) -> None:
        imp = self._pruner.importance
        assert hasattr(imp, "grads"), f"criterion {self.importance!r} takes no gradients"
        adversary = self.adversary if fact(self.importance, "needs_adversary") else None
        imp.grads = loss_gradients(model, self.batches, self.grad_batches, adversary)

    def report(self) -> dict[str, Any]:
        """Return sizes before and now, and the options, as plain data."""
        if self._model is None:
            raise UserError("call StructuredPruner.prepare(model, example_inputs) before report().")
        macs, params = count_macs_params(self._model, self._example)
        return {
            "params_before": self._before[1],
            "params_after": params,
            "macs_before": self._before[0],
            "macs_after": macs,
            "ratio": self.ratio,
            "importance": self.importance,
            "steps": self.steps,
            "steps_taken": self.steps_taken,
            "global_pruning": self.global_pruning,
            "round_to": self.round_to,
            "ignored": list(self._ignored),
            "sparsity_reg": self.sparsity_reg,
        }
