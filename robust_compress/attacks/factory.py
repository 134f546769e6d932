"""Build a training-time adversary from a recipe's adversary block."""

from __future__ import annotations

import torch

from robust_compress.attacks.torch_attacks import pgd_linf
from robust_compress.errors import UserError
from robust_compress.protocols import Adversary
from robust_compress.training.loop import TorchFGSMRS, TorchPGD, Trades


class TorchFGSM:
    """Adversary: one signed gradient step of size ``eps`` from the clean input (no start)."""

    def __init__(self, eps: float):
        self.eps = eps

    def perturb(self, model, x, y):
        """Return FGSM examples for ``(x, y)``."""
        return pgd_linf(model, x, y, self.eps, self.eps, 1, random_start=False)


def build_adversary(
    cfg, norm: str = "linf", seed: int = 0, method: str | None = None, trades_beta: float = 6.0
) -> Adversary | Trades | None:
    """Return the adversary a recipe block asks for, or None.

    Args:
        cfg: A resolved :class:`robust_compress.recipe.schema.AdversaryConfig` (eps and step
            filled in), or None.
        norm: The threat's norm; the ``torch`` backend supports only ``linf``.
        seed: Seed of random starts.
        method: The train stage's method; ``trades`` returns a :class:`Trades` loss.
        trades_beta: The TRADES trade-off between the clean and the robust term.

    Raises:
        UserError: The combination is not supported.
    """
    if cfg is None or method == "natural":
        return None
    gen = torch.Generator().manual_seed(seed)
    if method == "trades":
        if norm != "linf":
            raise UserError(
                f"TRADES training runs its inner maximisation in the L-inf ball; the threat's "
                f"norm is {norm!r}. Use method: pgd (the ART backend covers L2), or norm: linf."
            )
        return Trades(cfg.eps, cfg.step, cfg.steps, trades_beta)
    if cfg.backend == "art" or norm != "linf":
        from robust_compress.adapters.art.adversary import ArtAdversary

        return ArtAdversary(
            cfg.attack,
            cfg.eps,
            norm=norm,
            step=_step(cfg),
            steps=cfg.steps,
            restarts=cfg.restarts,
            seed=seed,
        )
    if cfg.attack == "fgsm":
        return TorchFGSM(cfg.eps)
    if cfg.attack == "fgsm_rs":
        return TorchFGSMRS(cfg.eps, cfg.step, generator=gen)
    if cfg.attack == "pgd":
        return TorchPGD(cfg.eps, cfg.steps, cfg.step, generator=gen)
    raise UserError(
        f"attack {cfg.attack!r} needs the ART backend in training: set `backend: art` in the "
        "adversary block."
    )


def _step(cfg):
    return None if cfg.attack in ("fgsm", "square") else cfg.step
