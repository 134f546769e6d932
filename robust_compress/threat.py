"""The threat model's rules, each written once: norms, eps bound, default step, projection.

Inputs are images in [0, 1]. Under the L-inf norm an eps of 1 or more lets an attack reach
any image at all, so an L-inf eps must lie in (0, 1); an L2 eps must be positive. The recipe
schema, the audit, the ART adapter and the CLI all ask :func:`eps_error`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from robust_compress.errors import UserError

if TYPE_CHECKING:
    from torch import Tensor

NORMS: tuple[str, ...] = ("linf", "l2")


def eps_error(eps: object, norm: str) -> str | None:
    """Why ``eps`` is not a valid radius under ``norm``; None when it is.

    Args:
        eps: The radius, in pixel space (inputs in [0, 1]).
        norm: ``linf`` or ``l2``.
    """
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not math.isfinite(eps):
        return f"eps must be a positive number, got {eps!r}"
    if eps <= 0:
        return f"eps must be a positive number, got {eps}"
    if norm == "linf" and eps >= 1:
        return (
            f"an linf eps must be below 1 (eps is in pixel space, inputs are in [0, 1]; eps "
            f"{eps:g} lets an attack reach any image), e.g. 0.1 for Fashion-MNIST or 8/255"
        )
    return None


def check_eps(eps: object, norm: str, name: str = "eps") -> float:
    """Return ``eps`` as a float, or raise a :class:`UserError` naming ``name``.

    Raises:
        UserError: ``eps`` is out of range for ``norm`` (see :func:`eps_error`).
    """
    if norm not in NORMS:
        raise UserError(f"unknown norm {norm!r}; use linf or l2.")
    error = eps_error(eps, norm)
    if error is not None:
        raise UserError(f"{error}." if name == "eps" else f"{name}: {error}.")
    return float(eps)  # type: ignore[arg-type]


def default_step(attack: str, eps: float, steps: int) -> float:
    """The step size an attack takes when none is given.

    ``fgsm``: eps (its one step); ``fgsm_rs``: 1.25 eps (Wong et al. 2020); ``apgd_ce`` and
    ``apgd_dlr``: 2 eps, Auto-PGD's initial step; ``pgd`` and anything else iterative:
    2.5 eps / steps (Madry et al. 2018). ``square`` takes no step.
    """
    if attack == "fgsm":
        return eps
    if attack == "fgsm_rs":
        return 1.25 * eps
    if attack in ("apgd_ce", "apgd_dlr"):
        return 2.0 * eps
    return 2.5 * eps / steps


def project(x_adv: Tensor, x: Tensor, eps: float, norm: str) -> Tensor:
    """Project ``x_adv`` onto the ``eps``-ball of ``norm`` around ``x`` and the box [0, 1].

    Every attack ends with this (ART's results too: repeating ART's own projection removes
    float rounding at the ball's edge). Tensor methods only, so this module stays import-light.
    """
    if norm == "linf":
        return x_adv.maximum(x - eps).minimum(x + eps).clamp_(0, 1)
    delta = x_adv - x
    size = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    scale = (eps / size).clamp(max=1.0).view(-1, *([1] * (x.ndim - 1)))
    return (x + delta * scale).clamp_(0, 1)
