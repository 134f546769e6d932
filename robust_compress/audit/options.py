"""Validation of the audit's options (every mistake a :class:`UserError` naming the option)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from robust_compress.audit.attacks import AttackBudget
from robust_compress.data.datasets import StreamData, TensorData
from robust_compress.errors import UserError, suggest
from robust_compress.threat import check_eps

DEFAULT_ATTACKS: tuple[str, ...] = ("fgsm", "pgd", "apgd_ce", "apgd_dlr", "square")


@dataclass(frozen=True)
class AuditConfig:
    """Everything an audit runs with, passed whole (``run_audit(model, data, config)``).

    Attributes:
        eps: Radius of the threat model in pixel space (inputs in [0, 1]).
        norm: ``linf`` or ``l2``.
        attacks: Registered attack names; they run cheapest first.
        samples: Number of examples audited (the first ones of the data).
        pgd_steps: Iterations of PGD (and of APGD unless ``apgd_steps`` is given).
        pgd_restarts: Random restarts of PGD and APGD.
        apgd_steps: Iterations of APGD-CE and APGD-DLR (default ``pgd_steps``).
        square_queries: Queries per example of the Square attack (300 by default, which fits
            a CPU; see docs/audit.md for the measured costs).
        eps_sweep: Extra eps values for the accuracy-vs-eps sweep (PGD on the first 200
            examples); the sanity checks add eps/4 .. a large eps by default.
        sanity_checks: Run the checks for weak attacks and gradient masking.
        batch_size: Examples per attack call.
        seed: Seed of every random choice; the same seed gives the same figures.
    """

    eps: float
    norm: str = "linf"
    attacks: Sequence[str] = DEFAULT_ATTACKS
    samples: int = 1000
    pgd_steps: int = 20
    pgd_restarts: int = 1
    apgd_steps: int | None = None
    square_queries: int = 300
    eps_sweep: Sequence[float] = ()
    sanity_checks: bool = True
    batch_size: int = 500
    seed: int = 0

    @classmethod
    def from_options(cls, options: dict) -> AuditConfig:
        """Build from keyword options, naming an unknown one in a :class:`UserError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UserError(
                f"unknown audit option {unknown[0]!r}." + suggest(unknown[0], sorted(known))
            )
        if "eps" not in options:
            raise UserError("the audit needs eps, the radius of its threat model.")
        return cls(**options)


def make_budget(data, config: AuditConfig) -> AttackBudget:
    """Validate the audit's options; return its :class:`AttackBudget`.

    Raises:
        UserError: A value out of range.
    """
    if not isinstance(data, TensorData | StreamData):
        raise UserError(f"data must be a TensorData or StreamData, got {type(data).__name__}.")
    c = config
    eps = check_eps(c.eps, c.norm)
    apgd_steps = c.pgd_steps if c.apgd_steps is None else c.apgd_steps
    for name, value in (
        ("pgd_steps", c.pgd_steps),
        ("pgd_restarts", c.pgd_restarts),
        ("apgd_steps", apgd_steps),
        ("square_queries", c.square_queries),
        ("batch_size", c.batch_size),
        ("samples", c.samples),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"{name} must be a positive integer, got {value!r}.")
    if not isinstance(c.seed, int) or c.seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {c.seed!r}.")
    return AttackBudget(
        float(eps),
        c.norm,
        c.pgd_steps,
        c.pgd_restarts,
        apgd_steps,
        c.square_queries,
        c.batch_size,
        c.seed,
        data.num_classes,
    )


def check_sweep_values(values: Sequence[float], norm: str) -> list[float]:
    """Validate extra eps values of the sweep.

    Raises:
        UserError: A value that is not a positive number in range.
    """
    return [check_eps(v, norm, "eps_sweep") for v in values]
