"""Builders of the built-in attacks: ``build(config, context) -> Adversary``.

The ``torch`` backend runs FGSM, FGSM-RS and PGD in plain PyTorch under an L-inf threat, and
targeted APGD (``apgd_t``) always runs in plain PyTorch; every other case goes through the ART
adapter, imported only here and only when needed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from robust_compress.attacks.adversaries import TorchFGSM, TorchFGSMRS, TorchPGD
from robust_compress.attacks.apgd_targeted import ApgdT
from robust_compress.attacks.configs import AdversaryConfig
from robust_compress.attacks.registry import AttackContext


def _torch(cfg: AdversaryConfig, ctx: AttackContext) -> bool:
    return getattr(cfg, "backend", "art") == "torch" and ctx.norm == "linf"


def _generator(ctx: AttackContext) -> torch.Generator:
    return torch.Generator().manual_seed(ctx.seed)


def build_art(cfg: AdversaryConfig, ctx: AttackContext) -> Any:
    """The attack ``cfg.attack`` run by ART on a live model (any norm)."""
    from robust_compress.adapters.art.adversary import ArtAdversary

    step = None if cfg.attack in ("fgsm", "square") else getattr(cfg, "step", None)
    return ArtAdversary(
        cfg.attack,
        cfg.eps,
        norm=ctx.norm,
        step=step,
        steps=getattr(cfg, "steps", 10),
        restarts=getattr(cfg, "restarts", 1),
        seed=ctx.seed,
        queries=getattr(cfg, "queries", 1000),
        batch_size=ctx.batch_size,
    )


def build_fgsm(cfg: AdversaryConfig, ctx: AttackContext) -> Any:
    """FGSM (plain PyTorch for L-inf with the torch backend, else ART)."""
    return TorchFGSM(cfg.eps) if _torch(cfg, ctx) else build_art(cfg, ctx)


def build_fgsm_rs(cfg: AdversaryConfig, ctx: AttackContext) -> Any:
    """FGSM with a random start (plain PyTorch for L-inf with the torch backend, else ART)."""
    if _torch(cfg, ctx):
        return TorchFGSMRS(cfg.eps, cfg.step, generator=_generator(ctx))
    return build_art(cfg, ctx)


def build_pgd(cfg: AdversaryConfig, ctx: AttackContext) -> Any:
    """PGD (plain PyTorch for L-inf with the torch backend, else ART)."""
    if _torch(cfg, ctx):
        return TorchPGD(cfg.eps, cfg.steps, cfg.step, generator=_generator(ctx))
    return build_art(cfg, ctx)


def build_apgd_t(cfg: AdversaryConfig, ctx: AttackContext) -> Any:
    """Targeted APGD on the DLR loss (plain PyTorch, L-inf or L2; ART's targeted APGD differs)."""
    return ApgdT(cfg.eps, ctx.norm, cfg.steps, cfg.targets, cfg.restarts, generator=_generator(ctx))


def build_square(cfg: AdversaryConfig, ctx: AttackContext) -> Any:
    """The Square attack; it perturbs through a model or any function from images to logits."""
    return SquareAdversary(cfg, ctx)


class SquareAdversary:
    """Square attack on ``scored``: a torch model, or a function from images to logits.

    Under L-inf it runs the audit's Square (:mod:`robust_compress.adapters.art.square`); under
    L2 it runs ART's on a model, or its black-box form on a function (an ONNX Runtime session).
    Each call uses the next seed, so chunks of one attack draw different squares.
    """

    def __init__(self, cfg: AdversaryConfig, ctx: AttackContext):
        self.cfg, self.ctx, self.calls = cfg, ctx, 0
        self._art = None

    def perturb(self, scored: Any, x: Tensor, y: Tensor) -> Tensor:
        """Return adversarial examples for ``(x, y)`` against ``scored``."""
        cfg, ctx = self.cfg, self.ctx
        seed, self.calls = ctx.seed + self.calls, self.calls + 1
        num_classes = ctx.num_classes or 10
        if ctx.norm == "linf":
            from robust_compress.adapters.art.square import square_linf

            return square_linf(
                scored, x, y, cfg.eps, cfg.queries, seed, num_classes, ctx.batch_size
            )
        if not isinstance(scored, nn.Module):
            from robust_compress.adapters.art.adversary import black_box_attack

            return black_box_attack(scored, x, y, cfg.eps, ctx.norm, cfg.queries, seed, num_classes)
        if self._art is None:
            self._art = build_art(cfg, ctx)
        return self._art.perturb(scored, x, y)
