"""The prune stage's methods beyond criterion-based pruning (see docs/methods.md).

Each ``run_*`` takes ``(session, stage, label)`` and leaves ``session.model`` pruned: HYDRA's
learned scores, ADMM concurrent adversarial pruning, lottery tickets with rewinding, and
edge-popup subnetworks of random weights.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from robust_compress.errors import UserError
from robust_compress.training.fit import fit

log = logging.getLogger(__name__)


def _head(session) -> str:
    from robust_compress.models.layer_names import find_head

    return find_head(session.model, session.example())


def scored_layers(session, stage) -> dict:
    """The layers a structured method scores: each Conv2d and Linear but the head and ``ignore``."""
    from robust_compress.models.layer_names import resolve_names
    from robust_compress.pruning import hydra

    kept = set(resolve_names(session.model, stage.ignore))
    layers = hydra.prunable_layers(session.model, _head(session))
    return {name: m for name, m in layers.items() if name not in kept}


def prune_by_scores(session, stage, scores, importance: str) -> None:
    """Remove the lowest-score channels of each layer through the Torch-Pruning adapter."""
    from robust_compress.adapters.torch_pruning.pruner import StructuredPruner

    pruner = StructuredPruner(
        "l1",
        stage.ratio,
        1,
        ignore=stage.ignore,
        round_to=stage.round_to,
        seed=session.recipe.seed,
        scores=scores,
    )
    pruner.prepare(session.model, session.example())
    pruner.step()
    report = pruner.report()
    report["importance"] = importance
    session.extra["prune_report"] = report


def _sparse_report(session, method: str, stage, sparsity: float, **info) -> None:
    """Unstructured methods keep the model's shapes: report the sparsity instead of sizes."""
    session.extra["prune_report"] = {
        "importance": method,
        "ratio": stage.ratio,
        "sparsity": sparsity,
        **info,
    }


def _fit_phases(session, stage, label: str, phases: list[int], **hooks) -> None:
    """Train through ``phases`` (the LR schedule restarts in each) under the stage's adversary."""
    adversary = session.adversary_for(session.stage_index, stage.adversary)
    fit(
        session,
        label,
        sum(phases),
        stage.optimizer,
        stage.lr_schedule,
        adversary,
        phases=phases,
        **hooks,
    )


# ----- HYDRA ----------------------------------------------------------------------------
def run_hydra(session, stage, label: str) -> None:
    """HYDRA: learn scores under the stage's adversary, prune by them, fine-tune adversarially."""
    from robust_compress.pruning import hydra

    form = stage.hydra_form
    if session.epoch > 0 and form == "unstructured":
        raise UserError(
            f"stage {label}: unstructured hydra cannot resume mid-fine-tuning (its mask is not "
            "checkpointed); run the recipe again without --resume."
        )
    adversary = session.adversary_for(session.stage_index, stage.adversary)
    handles: list = []
    if session.epoch == 0:  # after a resume the checkpoint holds the pruned model already
        layers, scores = _learn(session, stage, _head(session), form, adversary)
        if form == "structured":
            prune_by_scores(session, stage, scores, "hydra")
        else:
            handles = hydra.apply_unstructured(layers, scores, stage.ratio)
    if stage.finetune_epochs:
        fit(session, label, stage.finetune_epochs, stage.optimizer, stage.lr_schedule, adversary)
    info = {"form": form, "score_epochs": stage.score_epochs}
    if form == "unstructured":
        info["sparsity"] = hydra.finish_unstructured(layers, handles)
        _sparse_report(session, "hydra", stage, info["sparsity"])
    session.extra["hydra"] = info
    session.extra.setdefault("prune_report", {})["hydra"] = info
    session.model.eval()


def _learn(session, stage, head: str, form: str, adversary, init: str = "magnitude"):
    from robust_compress.models.layer_names import resolve_names
    from robust_compress.pruning import hydra

    return hydra.learn_scores(
        session.model,
        session.train_data,
        head=head,
        form=form,
        ratio=stage.ratio,
        epochs=stage.score_epochs,
        lr=stage.score_lr,
        batch_size=session.recipe.data.batch_size,
        seed=session.recipe.seed + session.stage_index,
        adversary=adversary,
        init=init,
        exclude=resolve_names(session.model, stage.ignore),
    )


# ----- edge-popup -------------------------------------------------------------------------
def reinitialize(model: nn.Module, seed: int) -> None:
    """Random weights: Kaiming-normal convolutions and Linear layers, zero biases, fresh BN."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.reset_parameters()


def run_edge_popup(session, stage, label: str) -> None:
    """Edge-popup: random weights, frozen; only scores are learned, under the adversary."""
    from robust_compress.pruning import hydra

    if session.records:
        log.warning("stage %s: edge_popup re-initialises the weights at random", label)
    reinitialize(session.model, session.recipe.seed * 7 + session.stage_index)
    adversary = session.adversary_for(session.stage_index, stage.adversary)
    layers, scores = _learn(session, stage, "", "unstructured", adversary, init="random")
    handles = hydra.apply_unstructured(layers, scores, stage.ratio)
    sparsity = hydra.finish_unstructured(layers, handles)
    _sparse_report(session, "edge_popup", stage, sparsity, score_epochs=stage.score_epochs)
    session.model.eval()


# ----- lottery tickets ----------------------------------------------------------------------
class _Lottery:
    """Rounds of (adversarial) training, magnitude pruning and rewinding, with resume."""

    def __init__(self, session, stage):
        from robust_compress.pruning import hydra

        self.session, self.stage = session, stage
        self.layers = hydra.prunable_layers(session.model, _head(session))
        self.state = session.extra.setdefault("lottery", {"masks": {}, "rewind": None})
        self.handles = self._apply()  # after a resume: the masks of the rounds done

    def before_epoch(self, epoch: int) -> bool:
        """Snapshot the rewind point; at each round's end prune and rewind (True: rebuild)."""
        from robust_compress.pruning import hydra, lottery

        stage, state = self.stage, self.state
        if epoch == stage.rewind_epoch and state["rewind"] is None:
            state["rewind"] = lottery.snapshot(self.session.model)
        if epoch == 0 or epoch % stage.round_epochs:
            return False
        done = epoch // stage.round_epochs
        ratio = lottery.round_ratio(stage.ratio, done, stage.rounds)
        hydra.remove_masks(self.layers, self.handles)
        state["masks"] = lottery.magnitude_masks(self.layers, state["masks"], ratio)
        last = done == stage.rounds
        source = self._random_state() if stage.reinit and last else state["rewind"]
        lottery.rewind(self.session.model, source, state["masks"])
        self.handles = self._apply()
        log.info("lottery round %d/%d: %.1f%% sparse", done, stage.rounds, 100 * ratio)
        return True

    def _random_state(self) -> dict:
        """The control's weights (``reinit``): a fresh random initialisation of the model."""
        from robust_compress.pruning import lottery

        other = copy.deepcopy(self.session.model)
        reinitialize(other, self.session.recipe.seed * 7 + 1000 + self.session.stage_index)
        return lottery.snapshot(other)

    def _apply(self) -> list:
        from robust_compress.pruning import hydra

        return hydra.apply_masks({self.layers[n]: m for n, m in self.state["masks"].items()})

    def finish(self) -> float:
        """Remove the hooks, zero the pruned weights a last time; return the sparsity."""
        from robust_compress.pruning import hydra, lottery

        masks = self.state["masks"]
        hydra.finish_unstructured({n: self.layers[n] for n in masks}, self.handles)
        return lottery.sparsity(masks)


def run_lottery(session, stage, label: str) -> None:
    """Iterative magnitude pruning with rewinding, every round trained adversarially."""
    ticket = _Lottery(session, stage)
    rounds = [stage.round_epochs] * (stage.rounds + 1)  # R pruning rounds, then the ticket
    _fit_phases(session, stage, label, rounds, before_epoch=ticket.before_epoch)
    sparsity = ticket.finish()
    session.extra.pop("lottery", None)
    _sparse_report(session, "lottery", stage, sparsity, rounds=stage.rounds)
    session.model.eval()


# ----- ADMM ---------------------------------------------------------------------------------
class _AdmmSchedule:
    """ADMM epochs (penalty, Z/U updates every ``admm_every``), then the hard prune."""

    def __init__(self, session, stage):
        from robust_compress.pruning.admm import Admm

        self.session, self.stage = session, stage
        self.admm = None
        if session.epoch == 0 or "admm" in session.extra:  # else: resumed after the prune
            layers = scored_layers(session, stage)
            self.admm = Admm(layers, stage.ratio, stage.admm_rho, stage.admm_rho_growth)
            if session.epoch > 0:
                self.admm.load_state(session.extra["admm"])
            session.extra["admm"] = self.admm.state()

    def penalty(self, epoch: int):
        """The ADMM penalty during the ADMM epochs, none after."""
        return self.admm.penalty if epoch < self.stage.admm_epochs else None

    def before_epoch(self, epoch: int) -> bool:
        """Z/U updates; the hard prune at the end of the ADMM epochs (True: shapes changed)."""
        stage = self.stage
        if self.admm is None or epoch == 0 or epoch > stage.admm_epochs:
            return False
        if epoch % stage.admm_every == 0 and epoch < stage.admm_epochs:
            self.admm.update()
            self.session.extra["admm"] = self.admm.state()
        if epoch < stage.admm_epochs:
            return False
        self.hard_prune()
        return True

    def hard_prune(self) -> None:
        """A last Z/U update, then remove the filters outside the support of Z, for real."""
        residual = self.admm.update()
        prune_by_scores(self.session, self.stage, self.admm.filter_scores(), "admm")
        self.session.extra.pop("admm", None)
        self.session.extra["prune_report"]["admm"] = {
            "epochs": self.stage.admm_epochs,
            "updates": self.admm.updates,
            "final_rho": self.admm.rho,
            "residual_before_prune": residual,
        }
        self.admm = None


def run_admm(session, stage, label: str) -> None:
    """ADMM concurrent adversarial pruning, then masked (here: shrunk) adversarial retraining."""
    schedule = _AdmmSchedule(session, stage)
    phases = [stage.admm_epochs] + ([stage.finetune_epochs] if stage.finetune_epochs else [])
    _fit_phases(
        session, stage, label, phases, before_epoch=schedule.before_epoch, penalty=schedule.penalty
    )
    if schedule.admm is not None:  # no retraining epochs: prune at the very end
        schedule.hard_prune()
    session.model.eval()
