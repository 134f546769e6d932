"""Targeted APGD on the targeted DLR loss (Croce & Hein 2020, AutoAttack's APGD-T), in torch.

One run per target class and restart: the targets of an example are the ``targets`` classes
with the highest clean logits other than its true class, attacked in that order, each only on
the examples every earlier target left correctly classified. The loss is the targeted
difference of logits ratio

    -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)

(``pi`` sorts the logits in decreasing order), maximised by Auto-PGD: a start drawn uniformly
on the eps-sphere's corners, momentum 0.75, an initial step of 2 eps halved at AutoAttack's
checkpoints (after 22% of the iterations, then at intervals shrinking by 3% of them down to
6%) when the loss oscillated or stalled, from the best point so far. An example counts as
broken by the first iterate that misclassifies it (any wrong class, not only the target).

ART 1.20.1's ``AutoProjectedGradientDescent(targeted=True, loss_type="difference_logits_ratio")``
is not this attack, hence the plain-torch version: its DLR loss reads only the target label
(the true class never enters it) with the untargeted denominator ``z_pi1 - z_pi3``; it stops
an example only when the target class is reached; its first-step acceptance is not mirrored
for the targeted sign; it keeps the last iterate rather than the first misclassified one; and
``AutoAttack(targeted=True)`` attacks every other class in label order, not the top-k by
the clean logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from robust_compress.attacks.torch_attacks import frozen_for_attack
from robust_compress.errors import UserError
from robust_compress.threat import project

MOMENTUM = 0.75
"""Weight of the new step against the previous one (AutoAttack's alpha)."""
OSCILLATION = 0.75
"""A checkpoint halves the step when the loss rose in at most this share of its iterations."""


def dlr_targeted(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    """The targeted DLR loss per example (higher: closer to class ``target``).

    Args:
        logits: Shape (N, C), C >= 4.
        y: True classes, shape (N,).
        target: Target classes, shape (N,).
    """
    ranked = logits.sort(dim=1, descending=True).values
    rows = torch.arange(len(y), device=logits.device)
    scale = ranked[:, 0] - 0.5 * (ranked[:, 2] + ranked[:, 3]) + 1e-12
    return -(logits[rows, y] - logits[rows, target]) / scale


def top_targets(logits: Tensor, y: Tensor, k: int) -> Tensor:
    """The ``k`` classes with the highest logits other than ``y``, best first: shape (N, k)."""
    masked = logits.detach().clone()
    masked[torch.arange(len(y), device=logits.device), y] = -math.inf
    return masked.topk(k, dim=1).indices


def _direction(grad: Tensor, norm: str) -> Tensor:
    if norm == "linf":
        return grad.sign()
    size = grad.flatten(1).norm(dim=1).view(-1, *([1] * (grad.ndim - 1)))
    return grad / (size + 1e-12)


def _start(x: Tensor, eps: float, norm: str, generator: torch.Generator | None) -> Tensor:
    """AutoAttack's random start: a corner-scaled uniform draw (L-inf) or a sphere point (L2)."""
    # drawn on the CPU (where the generator lives), so every device gets the same start
    if norm == "linf":
        t = torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1
        t = t / (t.flatten(1).abs().amax(1).view(-1, *([1] * (x.ndim - 1))) + 1e-12)
    else:
        t = _direction(torch.randn(x.shape, generator=generator, dtype=x.dtype), "l2")
    return (x + eps * t.to(x.device)).clamp(0, 1)


@dataclass
class _Schedule:
    """AutoAttack's step-size checkpoints for ``steps`` iterations."""

    steps: int
    period: int = field(init=False)
    counter: int = 0

    def __post_init__(self) -> None:
        self.period = max(int(0.22 * self.steps), 1)
        self.shrink = max(int(0.03 * self.steps), 1)
        self.floor = max(int(0.06 * self.steps), 1)

    def tick(self) -> int:
        """Count an iteration; the checkpoint's window length when one is due, else 0."""
        self.counter += 1
        if self.counter < self.period:
            return 0
        window, self.counter = self.period, 0
        self.period = max(self.period - self.shrink, self.floor)
        return window


def apgd_run(model: nn.Module, x: Tensor, y: Tensor, target: Tensor, attack: ApgdT) -> tuple:
    """One targeted APGD run of ``attack.steps`` iterations toward ``target``.

    Returns:
        (adversarial examples, fooled mask); an example not fooled keeps its clean input.
    """
    eps, norm = attack.eps, attack.norm
    x_adv = _start(x, eps, norm, attack.generator)
    loss, grad, fooled = _evaluate(model, x_adv, y, target)
    best_adv = torch.where(_rows(fooled, x), x_adv, x)
    best, best_loss, best_grad = x_adv.clone(), loss.clone(), grad.clone()
    step = torch.full((len(x),) + (1,) * (x.ndim - 1), 2.0 * eps, device=x.device)
    history, last_best, reduced = [loss], best_loss.clone(), torch.ones_like(fooled)
    previous, schedule = x_adv.clone(), _Schedule(attack.steps)
    for i in range(attack.steps):
        moved = project(x_adv + step * _direction(grad, norm), x, eps, norm)
        a = MOMENTUM if i > 0 else 1.0
        nxt = project(x_adv + a * (moved - x_adv) + (1 - a) * (x_adv - previous), x, eps, norm)
        x_adv, previous = nxt, x_adv
        loss, grad, wrong = _evaluate(model, x_adv, y, target)
        best_adv = torch.where(_rows(wrong & ~fooled, x), x_adv, best_adv)
        fooled |= wrong
        better = loss > best_loss
        best[better], best_grad[better] = x_adv[better], grad[better]
        best_loss[better] = loss[better]
        history.append(loss)
        window = schedule.tick()
        if window:
            rises = sum((history[-j] > history[-j - 1]).float() for j in range(1, window + 1))
            halve = (rises <= window * OSCILLATION) | (~reduced & (last_best >= best_loss))
            reduced, last_best = halve, best_loss.clone()
            step[halve] /= 2
            x_adv[halve], grad[halve] = best[halve], best_grad[halve]
    return best_adv, fooled


def _rows(mask: Tensor, like: Tensor) -> Tensor:
    return mask.view(-1, *([1] * (like.ndim - 1)))


def _evaluate(model: nn.Module, x_adv: Tensor, y: Tensor, target: Tensor) -> tuple:
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_adv)
        loss = dlr_targeted(logits, y, target)
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
    return loss.detach(), grad.detach(), logits.detach().argmax(1) != y


def apgd_targeted(model: nn.Module, x: Tensor, y: Tensor, attack: ApgdT) -> Tensor:
    """APGD-T: targeted APGD on the DLR loss against the top ``attack.targets`` classes.

    Args:
        model: The classifier (logits, at least 4 classes); given back as it was found.
        x: Inputs in [0, 1] on the model's device.
        y: True labels.
        attack: The budget (:class:`ApgdT`).

    Returns:
        Adversarial inputs in [0, 1] within ``eps`` of ``x``; an example no run fooled keeps
        its clean input.

    Raises:
        UserError: A model with fewer than 4 classes.
    """
    out = x.detach().clone()
    with frozen_for_attack(model):
        with torch.no_grad():
            logits = model(x)
        if logits.shape[1] < 4:
            raise UserError(
                f"apgd_t needs at least 4 classes (the targeted DLR loss reads the 4th-highest "
                f"logit); this model has {logits.shape[1]}: leave apgd_t out of the attacks."
            )
        ranked = top_targets(logits, y, min(attack.targets, logits.shape[1] - 1))
        robust = logits.argmax(1) == y
        for rank in range(ranked.shape[1]):
            for _ in range(attack.restarts):
                idx = robust.nonzero().squeeze(1)
                if len(idx) == 0:
                    return out
                adv, fooled = apgd_run(model, x[idx], y[idx], ranked[idx, rank], attack)
                out[idx[fooled]] = adv[fooled]
                robust[idx[fooled]] = False
    return out


@dataclass
class ApgdT:
    """Adversary: APGD-T (:func:`apgd_targeted`); each call draws fresh random starts.

    Attributes:
        eps: Radius under ``norm`` in pixel space.
        norm: ``linf`` or ``l2``.
        steps: Iterations per run.
        targets: Target classes per example (at most classes - 1 are used).
        restarts: Runs per target, each on the examples still correctly classified.
        generator: Random generator of the starts (CPU).
    """

    eps: float
    norm: str = "linf"
    steps: int = 100
    targets: int = 9
    restarts: int = 1
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Return adversarial examples for ``(x, y)``."""
        return apgd_targeted(model, x, y, self)
