"""The ``magnitude`` prune method: remove the channels an importance criterion ranks lowest.

The criterion (:data:`~robust_compress.pruning.registry.IMPORTANCE`) ranks the output channels
of every Conv2d and Linear but the head and ``ignore``; the Torch-Pruning adapter removes the
lowest-ranked ones, so the model really gets smaller. The ``steps`` pruning steps are taken at
once, or spread over the first ``schedule_epochs`` fine-tuning epochs; with ``sparse_epochs``
the model is first trained with a group-norm penalty that shrinks the weak channels (robust
sparse training). Fine-tuning uses the stage's adversary. A spread-out schedule resumes from
``session.progress.prune_steps``.
"""

from __future__ import annotations

import logging
import math

from robust_compress.protocols import Pruner
from robust_compress.pruning.registry import importance_fact
from robust_compress.training.fit import FitHooks, fit

log = logging.getLogger(__name__)


def make_pruner(
    session, index: int, stage, ratio: float | None = None, steps: int | None = None
) -> Pruner:
    """Build the Torch-Pruning adapter for a prune stage (not yet prepared).

    Args:
        session: The running session (data, seed; the stage's adversary comes from it).
        index: The stage's index in the recipe (seeds and the adversary cache).
        stage: The ``magnitude`` prune stage.
        ratio: Fraction of channels to remove (default: the stage's ``ratio``).
        steps: Pruning steps to take (default: the stage's ``steps``).
    """
    from robust_compress.adapters.torch_pruning.pruner import StructuredPruner

    adversary = None
    if importance_fact(stage.importance, "needs_adversary"):  # the recipe loader gave one
        adversary = session.adversary_for(index, stage.adversary)
    bs = session.recipe.data.batch_size
    seed = session.recipe.seed + index
    return StructuredPruner(
        stage.importance,
        stage.ratio if ratio is None else ratio,
        stage.steps if steps is None else steps,
        global_pruning=stage.global_pruning,
        ignore=stage.ignore,
        round_to=stage.round_to,
        adversary=adversary,
        batches=lambda: session.train_data.batches(bs, shuffle=True, seed=seed),
        grad_batches=stage.grad_batches,
        seed=seed,
        sparsity_reg=stage.sparsity_reg,
    )


def steps_due(stage, epoch: int) -> int:
    """Pruning steps that must have been taken before ``epoch`` starts."""
    if stage.schedule_epochs == 0:
        return stage.steps
    return min(stage.steps, math.ceil(stage.steps * (epoch + 1) / stage.schedule_epochs))


class _Schedule:
    """Takes the pruner's steps as the stage's schedule says, also after a resume."""

    def __init__(self, session, stage):
        self.session, self.stage = session, stage
        self.index = session.stage_index
        done = session.progress.prune_steps  # by stage: never an earlier stage's
        self.taken = done.get(self.index, 0) if session.epoch and isinstance(done, dict) else 0
        self.pruner = None

    def _prepare(self) -> None:
        stage, taken = self.stage, self.taken
        ratio, steps = stage.ratio, stage.steps
        if taken:  # resumed part-way: prune the rest, relative to the current model
            kept_now = 1 - stage.ratio * taken / stage.steps
            ratio, steps = 1 - (1 - stage.ratio) / kept_now, stage.steps - taken
            log.info("resuming the pruning schedule: %d step(s) left", steps)
        self.pruner = make_pruner(self.session, self.index, stage, ratio, steps)
        self.pruner.prepare(self.session.model, self.session.example())

    def regularizer(self):
        """The pruner's group-norm regulariser (sparse training before the pruning steps)."""
        if self.pruner is None:
            self._prepare()
        return self.pruner.regularize

    def advance(self, epoch: int) -> bool:
        """Take the steps due before ``epoch``; True when shapes changed."""
        changed = False
        while self.taken < steps_due(self.stage, epoch):
            if self.pruner is None:
                self._prepare()
            changed |= self.pruner.step()
            self.taken += 1
            self.session.progress.prune_steps = {self.index: self.taken}
        if changed:
            self.session.results["prune"] = self.pruner.report()
        return changed


def run(session, stage, label: str) -> None:
    """Prune ``session.model`` by the stage's criterion and fine-tune it under its adversary."""
    schedule = _Schedule(session, stage)
    sparse = stage.sparse_epochs
    epochs = max(stage.finetune_epochs, stage.schedule_epochs)
    if sparse + epochs == 0:
        schedule.advance(0)
        return
    adversary = session.adversary_for(session.stage_index, stage.adversary)
    hooks = FitHooks(
        before_epoch=lambda epoch: epoch >= sparse and schedule.advance(epoch - sparse),
        phases=[sparse, epochs] if sparse and epochs else None,
        after_backward=lambda epoch: schedule.regularizer() if epoch < sparse else None,
    )
    fit(session, label, sparse + epochs, stage.optimizer, stage.lr_schedule, adversary, hooks)
    if epochs == 0:  # sparse training only: prune at the end, no fine-tuning
        schedule.advance(0)
