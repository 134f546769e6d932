"""Validation of the audit's options (every mistake a :class:`UserError` naming the option)."""

from __future__ import annotations

from collections.abc import Sequence

from robust_compress.audit.attacks import AttackBudget
from robust_compress.data.datasets import TensorData
from robust_compress.errors import UserError
from robust_compress.threat import check_eps


def make_budget(
    data, eps, norm, pgd_steps, pgd_restarts, apgd_steps, queries, batch_size, seed
) -> AttackBudget:
    """Validate the audit's options; return its :class:`AttackBudget`.

    Raises:
        UserError: A value out of range.
    """
    if not isinstance(data, TensorData):
        raise UserError(f"data must be a TensorData, got {type(data).__name__}.")
    eps = check_eps(eps, norm)
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
    return [check_eps(v, norm, "eps_sweep") for v in values]
