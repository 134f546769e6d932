"""A Lightning callback that follows a recipe's stages in a user's ``Trainer``.

The Trainer runs the user's own ``training_step`` and dataloaders; the callback adds, epoch by
epoch, what the recipe's stages say, through the same engine calls a recipe run uses
(:class:`~robust_compress.engine.session.Session`): adversarial examples from each stage's
adversary (replacing the batch's inputs in place), Torch-Pruning steps with the optimizer rebuilt
after each, the Brevitas fake-quant model swapped in for QAT, and the audit stage at the end of
``fit`` (with ``report.json`` and ``report.html`` when given a run folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from robust_compress.engine.epoch_plan import EpochPlan, plan_epochs


class RobustCompressCallback(pl.Callback):
    """Adversarial training, pruning, QAT and a final audit for a LightningModule.

    Args:
        recipe: A recipe (path, YAML text or :class:`~robust_compress.recipe.schema.Recipe`);
            its ``data`` gives the examples pruning, calibration and the audit read.
        attr: The LightningModule attribute holding the network (replaced when quantized).
        out: A run folder for the report and audit files, or None.

    Set the Trainer's ``max_epochs`` to :attr:`epochs`.
    """

    def __init__(self, recipe: Any, attr: str = "model", out: str | Path | None = None):
        from robust_compress.engine.epoch_plan import as_recipe

        self.recipe = as_recipe(recipe)
        self.attr = attr
        self.out = out
        self.plan: list[EpochPlan] = plan_epochs(self.recipe)
        self.session = None
        self.report: dict | None = None

    @property
    def epochs(self) -> int:
        """Epochs the recipe's training, pruning and quantization stages take together."""
        return len(self.plan)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:  # noqa: D102
        from robust_compress.engine.session import Session

        if stage == "fit" and self.session is None:
            device = trainer.strategy.root_device  # where Lightning puts the module
            self.session = Session(self.recipe, self.out, device=str(device))
            self.session.setup(getattr(pl_module, self.attr))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        from robust_compress.engine.epoch_plan import start_epoch

        if trainer.current_epoch >= len(self.plan):
            return
        model = start_epoch(self.session, self.plan[trainer.current_epoch])
        if model is not None:
            if model is not getattr(pl_module, self.attr):
                setattr(pl_module, self.attr, model)
            trainer.strategy.setup_optimizers(trainer)  # parameters were replaced

    def on_train_batch_start(  # noqa: D102
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        from robust_compress.engine.epoch_plan import adversarial_inputs

        if trainer.current_epoch < len(self.plan):
            x, y = batch[0], batch[1]
            step = self.plan[trainer.current_epoch]
            x_adv = adversarial_inputs(self.session, step, getattr(pl_module, self.attr), x, y)
            x.copy_(x_adv)  # the batch's own tensor: training_step sees the adversarial inputs
            pl_module.train()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        from robust_compress.engine.epoch_plan import finish

        self.report = finish(self.session)
