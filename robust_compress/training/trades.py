"""The TRADES training loss (its inner maximisation runs in our own loop)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robust_compress.attacks.torch_attacks import frozen_for_attack
from robust_compress.errors import UserError
from robust_compress.threat import project


@dataclass
class Trades:
    """TRADES loss (Zhang et al. 2019), with its inner maximisation in our own loop.

    The loss is the clean cross-entropy plus ``beta`` times the KL divergence between the
    predictions on clean and on adversarial inputs; the adversarial inputs maximise that KL
    with ``steps`` signed steps of ``step`` inside the L-inf ``eps`` ball.
    """

    eps: float
    step: float
    steps: int = 7
    beta: float = 6.0

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, attack_model: nn.Module | None = None
    ) -> Tensor:
        """Return the TRADES loss of ``model`` (in train mode) on the batch.

        ``attack_model`` (default ``model``) runs the inner maximisation: the plain module
        when ``model`` is its DistributedDataParallel wrapper.
        """
        net = model if attack_model is None else attack_model
        with frozen_for_attack(net):
            p_clean = F.softmax(net(x), dim=1)
            x_adv = (x + 0.001 * torch.randn_like(x)).clamp(0, 1)
            for _ in range(self.steps):
                x_adv = x_adv.detach().requires_grad_(True)
                kl = F.kl_div(F.log_softmax(net(x_adv), 1), p_clean, reduction="sum")
                (grad,) = torch.autograd.grad(kl, x_adv)
                x_adv = x_adv + self.step * grad.sign()
                x_adv = project(x_adv, x, self.eps, "linf")
        logits = model(x)
        robust = F.kl_div(
            F.log_softmax(model(x_adv.detach()), 1), F.softmax(logits, 1), reduction="batchmean"
        )
        return F.cross_entropy(logits, y) + self.beta * robust


def trades_for(cfg, norm: str, beta: float) -> Trades:
    """The TRADES loss of a train stage whose adversary block is ``cfg`` (resolved).

    Raises:
        UserError: The threat is not L-inf (TRADES maximises its KL term in the L-inf ball).
    """
    if norm != "linf":
        raise UserError(
            f"TRADES training runs its inner maximisation in the L-inf ball; the threat's "
            f"norm is {norm!r}. Use method: pgd (the ART backend covers L2), or norm: linf."
        )
    return Trades(cfg.eps, cfg.step, getattr(cfg, "steps", 1), beta)
