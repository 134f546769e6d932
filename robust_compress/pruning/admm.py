"""ADMM concurrent adversarial pruning (Ye et al., ICCV 2019), filter-sparse form.

Pruning is posed as ``min loss_adv(W)`` subject to each layer having at most ``keep`` output
channels switched on. What switches a channel on is constrained (:func:`switches`): under
BatchNorm the BN scale and shift of the channel (as the ``bn_filter`` configuration of Ye et
al.'s code constrains the BN scale; a conv filter shrunk to near zero is rescaled back by the
BN after it, and the shift alone keeps a channel on), else the layer's filter and bias. Per
layer they form ``W``, one row per output channel. ADMM splits the problem with an auxiliary
``Z`` (the constrained copy) and a scaled dual ``U``:

- W-step: SGD on ``loss_adv(W) + rho / 2 * sum ||W - Z + U||^2`` (:meth:`Admm.penalty`);
- Z-step: ``Z = project(W + U)``, keeping the ``keep`` rows of largest L2 norm;
- U-step: ``U = U + W - Z``; then ``rho`` grows by ``rho_growth`` and ``U``, the dual scaled
  by ``1 / rho``, shrinks by the same factor (:meth:`Admm.update`).

After the ADMM epochs, the channels outside the support of ``Z`` are removed for real (the
Torch-Pruning adapter ranks channels by :meth:`Admm.filter_scores`), and the smaller model is
retrained adversarially. The relative residual ``||W - Z|| / ||W||`` of every Z/U update is in
the report (``prune.admm.residuals``): near 0, the hard prune removes what ADMM already
switched off.

:func:`run` is the prune stage's ``admm`` method: ``admm_epochs`` epochs under the stage's
adversary with the penalty (Z/U updates every ``admm_every`` epochs), the hard prune, then
``finetune_epochs`` of retraining. The ADMM state resumes from
``session.progress.method_state["admm"]``.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from robust_compress.pruning.masks import batchnorm_after, keep_count
from robust_compress.pruning.session_ops import fit_phases, prune_by_scores, scored_layers
from robust_compress.training.fit import FitHooks

log = logging.getLogger(__name__)


def project_filters(w: Tensor, ratio: float) -> Tensor:
    """Euclidean projection of ``w`` onto the tensors with ``keep_count`` non-zero filters.

    Args:
        w: A weight tensor whose first dimension indexes output filters.
        ratio: Fraction of the filters set to zero (those of smallest L2 norm).
    """
    norms = w.detach().flatten(1).norm(dim=1)
    keep = torch.topk(norms, keep_count(len(norms), ratio)).indices
    mask = torch.zeros_like(norms)
    mask[keep] = 1.0
    return w.detach() * mask.view(-1, *([1] * (w.dim() - 1)))


def switches(model: nn.Module | None, layers: dict[str, nn.Module]) -> dict[str, list]:
    """The parameters that switch each layer's output channels on (one row per channel).

    Under BatchNorm its scale and shift; else the layer's weight and bias. Without ``model``
    (no way to find the BatchNorm), the layer's weight and bias.
    """
    bns = batchnorm_after(model, layers) if model is not None else {}
    out = {}
    for name, m in layers.items():
        owner = bns.get(m, m)
        out[name] = [p for p in (owner.weight, owner.bias) if p is not None]
    return out


def rows(params: list) -> Tensor:
    """The parameters as one matrix with a row per output channel (differentiable)."""
    return torch.cat([p.reshape(p.shape[0], -1) for p in params], dim=1)


class Admm:
    """The ADMM state of a model's prunable layers (the auxiliary ``Z``, the dual ``U``, rho).

    Args:
        layers: The layers to make channel-sparse, by name (the head excluded).
        ratio: Fraction of each layer's channels to remove.
        rho: Initial penalty weight.
        rho_growth: Factor applied to ``rho`` after every Z/U update.
        model: The model of ``layers``, to find the BatchNorm after each (see
            :func:`switches`).
    """

    def __init__(
        self,
        layers: dict[str, nn.Module],
        ratio: float,
        rho: float,
        rho_growth: float,
        model: nn.Module | None = None,
    ):
        self.layers, self.ratio = layers, ratio
        self.rho, self.rho_growth = rho, rho_growth
        self.params = switches(model, layers)
        self.z = {n: project_filters(self._w(n), ratio) for n in layers}
        self.u = {n: torch.zeros_like(self._w(n).detach()) for n in layers}
        self.updates = 0
        self.residuals: list[float] = []

    def _w(self, name: str) -> Tensor:
        return rows(self.params[name])

    def penalty(self) -> Tensor:
        """``rho / 2 * sum_l ||W_l - Z_l + U_l||^2``, differentiable in the parameters."""
        total = sum(((self._w(n) - self.z[n] + self.u[n]) ** 2).sum() for n in self.layers)
        return 0.5 * self.rho * total

    @torch.no_grad()
    def update(self) -> float:
        """Take a Z-step and a U-step, grow rho; return the relative residual ||W - Z|| / ||W||."""
        residual = weight = 0.0
        for n in self.layers:
            w = self._w(n).detach()
            self.z[n] = project_filters(w + self.u[n], self.ratio)
            self.u[n] += w - self.z[n]
            residual += float(((w - self.z[n]) ** 2).sum())
            weight += float((w**2).sum())
        self.rho *= self.rho_growth
        for u in self.u.values():  # scaled dual: rho * U stays the same when rho grows
            u /= self.rho_growth
        self.updates += 1
        rel = (residual / max(weight, 1e-12)) ** 0.5
        self.residuals.append(rel)
        log.info("admm update %d: residual %.4f, rho now %.3g", self.updates, rel, self.rho)
        return rel

    def filter_scores(self) -> dict[nn.Module, Tensor]:
        """One score per output filter of each layer, ranking the support of ``Z`` first.

        Filters inside the support score above every filter outside it; within each side the
        L2 norm of ``W`` orders them, so per-layer pruning keeps the filters ``Z`` kept.
        """
        scores = {}
        for n, m in self.layers.items():
            z_norm = self.z[n].flatten(1).norm(dim=1)
            w_norm = self._w(n).detach().norm(dim=1)
            scores[m] = (z_norm > 0).float() * (1 + w_norm.max()) + w_norm
        return scores

    def state(self) -> dict:
        """The state as plain data (tensors keyed by layer name), for a checkpoint."""
        return {
            "z": dict(self.z),
            "u": dict(self.u),
            "rho": self.rho,
            "updates": self.updates,
            "residuals": list(self.residuals),
        }

    def load_state(self, state: dict) -> None:
        """Restore what :meth:`state` returned."""
        self.z, self.u = dict(state["z"]), dict(state["u"])
        self.rho, self.updates = float(state["rho"]), int(state["updates"])
        self.residuals = [float(r) for r in state.get("residuals", [])]


class _AdmmSchedule:
    """ADMM epochs (penalty, Z/U updates every ``admm_every``), then the hard prune."""

    def __init__(self, session, stage):
        self.session, self.stage = session, stage
        self.admm = None
        saved = session.progress.method_state
        if session.epoch == 0 or "admm" in saved:  # else: resumed after the prune
            layers = scored_layers(session, stage)
            self.admm = Admm(
                layers, stage.ratio, stage.admm_rho, stage.admm_rho_growth, session.model
            )
            if session.epoch > 0:
                self.admm.load_state(saved["admm"])
            saved["admm"] = self.admm.state()

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
            self.session.progress.method_state["admm"] = self.admm.state()
        if epoch < stage.admm_epochs:
            return False
        self.hard_prune()
        return True

    def hard_prune(self) -> None:
        """A last Z/U update, then remove the filters outside the support of Z, for real."""
        residual = self.admm.update()
        prune_by_scores(self.session, self.stage, self.admm.filter_scores(), "admm")
        self.session.progress.method_state.pop("admm", None)
        self.session.results["prune"]["admm"] = {
            "epochs": self.stage.admm_epochs,
            "updates": self.admm.updates,
            "final_rho": self.admm.rho,
            "residual_before_prune": residual,
            "residuals": list(self.admm.residuals),
            "constrained": "batchnorm scale and shift (else filter and bias) of each channel",
        }
        self.admm = None


def run(session, stage, label: str) -> None:
    """ADMM concurrent adversarial pruning, then masked (here: shrunk) adversarial retraining."""
    schedule = _AdmmSchedule(session, stage)
    phases = [stage.admm_epochs] + ([stage.finetune_epochs] if stage.finetune_epochs else [])
    hooks = FitHooks(before_epoch=schedule.before_epoch, penalty=schedule.penalty)
    fit_phases(session, stage, label, phases, hooks)
    if schedule.admm is not None:  # no retraining epochs: prune at the very end
        schedule.hard_prune()
    session.model.eval()
