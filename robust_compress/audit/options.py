"""Validation of the audit's options (every mistake a :class:`UserError` naming the option)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from robust_compress.audit.attacks import AttackBudget
from robust_compress.audit.profiles import DEFAULT_ATTACKS, STRENGTHS
from robust_compress.data.datasets import StreamData, TensorData
from robust_compress.errors import UserError, suggest
from robust_compress.threat import check_eps


@dataclass(frozen=True)
class AuditConfig:
    """Everything an audit runs with, passed whole (``run_audit(model, data, config)``).

    Attributes:
        eps: Radius of the threat model in pixel space (inputs in [0, 1]).
        norm: ``linf`` or ``l2``.
        attacks: Registered attack names; they run cheapest first.
        strength: ``default`` (fits a CPU) or ``autoattack`` (AutoAttack's standard budget,
            for a GPU): the values of the four options below that are left None
            (:data:`STRENGTHS`). A value given explicitly always wins.
        samples: Number of examples audited (the first ones of the data).
        pgd_steps: Iterations of PGD (and of APGD unless ``apgd_steps`` is set).
        pgd_restarts: Random restarts of PGD and APGD (1 in both profiles).
        apgd_steps: Iterations of APGD-CE, APGD-DLR and APGD-T (default: ``pgd_steps``;
            autoattack: 100).
        apgd_targets: Target classes of APGD-T (default 3; autoattack 9).
        square_queries: Queries per example of the Square attack (default 300, which fits
            a CPU; autoattack 5000; see docs/audit.md for the measured costs).
        eps_sweep: Extra eps values for the accuracy-vs-eps sweep (PGD on the first 200
            examples); the sanity checks add eps/4 .. a large eps by default.
        sanity_checks: Run the checks for weak attacks and gradient masking.
        batch_size: Examples per attack call.
        seed: Seed of every random choice; the same seed gives the same figures.
    """

    eps: float
    norm: str = "linf"
    attacks: Sequence[str] = DEFAULT_ATTACKS
    strength: str = "default"
    samples: int = 1000
    pgd_steps: int = 20
    pgd_restarts: int | None = None
    apgd_steps: int | None = None
    apgd_targets: int | None = None
    square_queries: int | None = None
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
    v = resolve_strength(c)
    for name, value in (
        ("pgd_steps", c.pgd_steps),
        *v.items(),
        ("batch_size", c.batch_size),
        ("samples", c.samples),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"{name} must be a positive integer, got {value!r}.")
    if not isinstance(c.seed, int) or c.seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {c.seed!r}.")
    return AttackBudget(
        eps=float(eps),
        norm=c.norm,
        pgd_steps=c.pgd_steps,
        batch_size=c.batch_size,
        seed=c.seed,
        num_classes=data.num_classes,
        strength=c.strength,
        **v,
    )


def resolve_strength(config: AuditConfig) -> dict[str, int]:
    """The budgets of :data:`STRENGTHS` that ``config`` leaves None, under its ``strength``.

    Raises:
        UserError: An unknown strength.
    """
    if config.strength not in STRENGTHS:
        hint = suggest(str(config.strength), STRENGTHS)
        raise UserError(f"unknown audit strength {config.strength!r}." + hint)
    values = {}
    for name, fallback in STRENGTHS[config.strength].items():
        value = getattr(config, name)
        values[name] = fallback if value is None else value
    if values["apgd_steps"] is None:
        values["apgd_steps"] = config.pgd_steps
    return values


def check_sweep_values(values: Sequence[float], norm: str) -> list[float]:
    """Validate extra eps values of the sweep.

    Raises:
        UserError: A value that is not a positive number in range.
    """
    return [check_eps(v, norm, "eps_sweep") for v in values]
