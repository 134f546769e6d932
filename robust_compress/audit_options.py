"""Validation of the audit's options (every mistake a :class:`UserError` naming the option)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from robust_compress.audit_attacks import AttackBudget
from robust_compress.data import TensorData
from robust_compress.errors import UserError


def make_budget(
    data, eps, norm, pgd_steps, pgd_restarts, apgd_steps, queries, batch_size, seed
) -> AttackBudget:
    """Validate the audit's options; return its :class:`AttackBudget`.

    Raises:
        UserError: A value out of range.
    """
    if not isinstance(data, TensorData):
        raise UserError(f"data must be a TensorData, got {type(data).__name__}.")
    if norm not in ("linf", "l2"):
        raise UserError(f"unknown norm {norm!r}; use linf or l2.")
    if not isinstance(eps, int | float) or not math.isfinite(eps) or eps <= 0:
        raise UserError(f"eps must be a positive number, got {eps!r}.")
    if norm == "linf" and eps >= 1:
        raise UserError(
            f"linf eps {eps} covers the whole input range [0, 1]; eps is in pixel "
            "space (e.g. 0.1 for Fashion-MNIST)."
        )
    apgd_steps = pgd_steps if apgd_steps is None else apgd_steps
    for name, value in (
        ("pgd_steps", pgd_steps),
        ("pgd_restarts", pgd_restarts),
        ("apgd_steps", apgd_steps),
        ("square_queries", queries),
        ("batch_size", batch_size),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"{name} must be a positive integer, got {value!r}.")
    if not isinstance(seed, int) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}.")
    return AttackBudget(
        float(eps),
        norm,
        pgd_steps,
        pgd_restarts,
        apgd_steps,
        queries,
        batch_size,
        seed,
        data.num_classes,
    )


def check_sweep_values(values: Sequence[float], norm: str) -> list[float]:
    """Validate extra eps values of the sweep.

    Raises:
        UserError: A value that is not a positive number in range.
    """
    out = []
    for v in values:
        if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise UserError(f"eps_sweep values must be positive numbers, got {v!r}.")
        if norm == "linf" and v >= 1:
            raise UserError(f"eps_sweep value {v} is >= 1, the whole input range (linf).")
        out.append(float(v))
    return out
