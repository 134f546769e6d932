"""The audit's accuracy-vs-eps sweep: each attack alone at radii from eps/4 to a large eps."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from robust_compress.attacks.registry import meta
from robust_compress.audit.attacks import AttackBudget, Target, audit_config, craft

SWEEP_SAMPLES = 200
"""Examples (the first of the audited ones) the eps sweep and the 2x-steps check run on."""
SWEEP_SQUARE_QUERIES = 300
"""Square's queries per sweep point when no torch twin is there (ONNX file alone)."""
SWEEP_EXTRA_SQUARE_QUERIES = 100
"""Square's queries per sweep point when it only adds a curve beside PGD's (cost control)."""


def large_eps(eps: float, norm: str, numel: int) -> float:
    """The sweep's large eps: every image in [0, 1] lies within it of the grey image 0.5."""
    reach = 0.5 if norm == "linf" else 0.5 * math.sqrt(numel)
    return max(reach, eps)


def default_sweep(eps: float, norm: str, numel: int) -> list[float]:
    """eps/4, eps/2, eps, 2 eps, ... while below 2/3 of the large eps, then the large eps."""
    top = large_eps(eps, norm, numel)
    sweep, k = [], -2
    while eps * 2.0**k <= top / 1.5 or k <= 0:  # powers of two keep eps itself exact
        sweep.append(eps * 2.0**k)
        k += 1
    return sorted({*(e for e in sweep if e < top), top})


def sweep_attack(target: Target) -> str:
    """PGD (white-box or transfer) when a torch twin exists, else Square on the ONNX file."""
    return "pgd" if target.twin is not None else "square"


def run_sweep(
    target: Target,
    x: Tensor,
    y: Tensor,
    clean: Tensor,
    budget: AttackBudget,
    eps_list: list[float],
    say: Callable[[str], None],
    attacks: list[str] | None = None,
) -> list[dict]:
    """Accuracy of each attack alone at each eps, on the first examples given.

    The main sweep attack (:func:`sweep_attack`) always runs; ``attacks`` adds the rest of
    the ensemble (only Square when there is no torch twin to take gradients from), except the
    attacks registered with ``sweep=False`` (APGD-T).
    """
    names = [sweep_attack(target)]
    for name in attacks or []:
        black_box = not meta(name, "gradient", True)
        if not meta(name, "sweep", True):  # e.g. APGD-T: its registry entry opts out
            continue
        if name not in names and (target.twin is not None or black_box):
            names.append(name)
    rows = []
    for i, name in enumerate(names):
        cap = SWEEP_SQUARE_QUERIES if i == 0 else SWEEP_EXTRA_SQUARE_QUERIES
        queries = min(budget.square_queries, cap) if name == "square" else None
        rows += _sweep_one(target, name, (x, y, clean), budget, eps_list, say, queries)
    return rows


def _sweep_one(target, name, examples, budget, eps_list, say, queries) -> list[dict]:
    x, y, clean = examples
    idx = clean.nonzero().squeeze(1)
    rows = []
    for e in eps_list:
        say(f"eps sweep: {name} at eps {e:g} on {len(idx)} examples")
        fooled = torch.zeros(len(y), dtype=torch.bool, device="cpu")
        if len(idx):
            cfg = audit_config(name, budget, e, queries=queries)
            adv = craft(target, cfg, x[idx], y[idx], budget, salt=1)
            fooled[idx] = ~target.correct(adv, y[idx], budget.batch_size)
        acc = float((clean & ~fooled).float().mean())
        rows.append(
            {"eps": e, "accuracy": acc, "attack": name, "samples": len(y), "queries": queries}
        )
    return rows
