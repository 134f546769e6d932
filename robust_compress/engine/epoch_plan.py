"""A recipe's stages as an epoch-by-epoch plan, for a training loop the engine does not own.

A foreign loop (the Lightning callback, :mod:`robust_compress.adapters.lightning.callback`)
asks at each epoch's start what to do (:func:`start_epoch`), turns each batch's inputs into
adversarial ones (:func:`adversarial_inputs`) and ends with :func:`finish`. Every step is the
engine's own call: :meth:`Session.pruning_step`, :meth:`Session.quantize`, the stages' adversaries
and the ``audit`` stage, so a callback run and a recipe run do the same things.

Epochs per stage: ``train`` its ``epochs``; ``prune`` one epoch per pruning step (the step at the
epoch's start) then its ``finetune_epochs``; ``quantize`` ``max(qat_epochs, 1)``, quantized at
its first epoch's start. ``export`` is not run (export with ``robust-compress export``) and
``audit`` runs in :func:`finish`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from robust_compress.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochPlan:
    """What one epoch of the foreign loop does: the stage it belongs to, and its place in it."""

    stage_index: int
    kind: str
    epoch_in_stage: int
    prune_step: bool = False


def as_recipe(recipe: Any):
    """A recipe object from a Recipe, a path to a YAML file or YAML text."""
    from robust_compress.recipe.loader import load_recipe, parse_recipe

    if hasattr(recipe, "stages"):
        return recipe
    if isinstance(recipe, Path) or (isinstance(recipe, str) and "\n" not in recipe):
        return load_recipe(recipe)
    return parse_recipe(recipe, source="<callback recipe>")


def plan_epochs(recipe) -> list[EpochPlan]:
    """One :class:`EpochPlan` per epoch of the recipe's train, prune and quantize stages."""
    plan: list[EpochPlan] = []
    for i, stage in enumerate(recipe.stages):
        if stage.kind == "train":
            plan += [EpochPlan(i, "train", e) for e in range(stage.epochs)]
        elif stage.kind == "prune":
            if stage.method != "magnitude":
                raise UserError(f"stages.{i}.prune: the callback prunes with method: magnitude")
            steps = [EpochPlan(i, "prune", e, prune_step=True) for e in range(stage.steps)]
            tune = [EpochPlan(i, "prune", stage.steps + e) for e in range(stage.finetune_epochs)]
            plan += steps + tune
        elif stage.kind == "quantize":
            plan += [EpochPlan(i, "quantize", e) for e in range(max(stage.qat_epochs, 1))]
        elif stage.kind == "export":
            log.warning("stages.%d.export: not run by the callback", i)
    return plan


def start_epoch(session, step: EpochPlan) -> nn.Module | None:
    """Do what the epoch's start asks; return the model when its parameters changed."""
    session.stage_index = step.stage_index
    if step.kind in ("prune", "quantize") and not session.records:  # the dense model's row
        session.records.append({**session.measure("dense", "train"), "seconds": 0.0})
    if step.prune_step and session.pruning_step():
        return session.model
    if step.kind == "quantize" and step.epoch_in_stage == 0:
        calib = (x for x, _ in session.train_data.batches(session.recipe.data.batch_size))
        return session.quantize(calib)
    return None


def adversarial_inputs(session, step: EpochPlan, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """``x`` attacked by the stage's adversary (``x`` itself for none, natural or TRADES)."""
    adversary = session.adversary_for(step.stage_index)
    if adversary is None or not hasattr(adversary, "perturb"):
        return x
    return adversary.perturb(model, x.to(session.device), y.to(session.device)).to(x.device)


def finish(session) -> dict:
    """Measure the model, run the recipe's audit stage and write the report (if a folder)."""
    from robust_compress.registry import STAGES
    from robust_compress.report.run_report import write_report

    session.model.eval()
    kind = "quantize" if session.quant_config is not None else "prune"
    if session.dense_state is None:
        kind = "train"
    session.records.append({**session.measure("final", kind), "seconds": 0.0})
    for i, stage in enumerate(session.recipe.stages):
        if stage.kind == "audit":
            session.stage_index = i
            result = STAGES.get("audit")(session, stage, f"{i}:audit")
            session.results[result.section] = result.data
    report = write_report(session)
    session.hooks.on_run_end(report)
    return report
