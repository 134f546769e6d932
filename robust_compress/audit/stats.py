"""Exact small-sample statistics of the audit: intervals of accuracies and paired tests.

Pure Python (``math`` and ``statistics`` only), so that the core imports nothing foreign:

- :func:`wilson` — the 95% Wilson score interval of a proportion (an accuracy on n images);
- :func:`clopper_pearson` — the exact one- or two-sided binomial bound (randomized smoothing);
- :func:`mcnemar` — the exact McNemar test of two models on the same images: only the
  discordant images (kept by one model, lost by the other) carry information, and under the
  null hypothesis each of them is equally likely to go either way;
- :func:`sign_test` — the same test when each image has several outcomes per model (seeds,
  severities): the outcomes of one image are not independent, so the image, not the outcome,
  is the unit: an image counts for the model that got more of its outcomes right;
- :func:`holm` — Holm's step-down adjustment of several p-values tested together.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

Z95 = NormalDist().inv_cdf(0.975)
"""The two-sided 95% normal quantile (1.96)."""


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / n`` (95% by default).

    Args:
        successes: Examples counted (e.g. robust images).
        n: Examples in all; 0 gives the uninformative interval (0, 1).
        z: Normal quantile of the interval's level.

    Returns:
        ``(low, high)`` within [0, 1].
    """
    _check_counts(successes, n)
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), as the regularized incomplete beta I_{1-p}(n-k, k+1)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    return betainc(n - k, k + 1, 1.0 - p)


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (continued fraction, Lentz's method)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below the mean
        return 1.0 - betainc(b, a, 1.0 - x)
    return math.exp(log_front) * _beta_fraction(a, b, x) / a


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    out = d
    for m in range(1, 10_000):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            out *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return out


def clopper_pearson(successes: int, n: int, alpha: float, side: str = "lower") -> float:
    """The exact (Clopper-Pearson) binomial bound on p at level ``1 - alpha``.

    Args:
        successes: Observed successes.
        n: Trials.
        alpha: Error probability of the bound (one-sided).
        side: ``lower`` (the largest p with P(X >= successes) <= alpha) or ``upper``.

    Returns:
        The bound, found by bisection on :func:`binom_cdf` to 1e-10.

    Raises:
        ValueError: Counts out of range or an unknown ``side``.
    """
    _check_counts(successes, n)
    if side not in ("lower", "upper"):
        raise ValueError(f"side must be 'lower' or 'upper', got {side!r}")
    if side == "lower":
        if successes == 0:
            return 0.0
        return _bisect(lambda p: 1.0 - binom_cdf(successes - 1, n, p) > alpha, upward=False)
    if successes == n:
        return 1.0
    return _bisect(lambda p: binom_cdf(successes, n, p) > alpha, upward=True)


@dataclass(frozen=True)
class Paired:
    """Two models on the same images: the discordant counts and McNemar's exact p-value.

    Attributes:
        n: Images compared.
        only_a: Images model ``a`` keeps (e.g. robust) and model ``b`` loses.
        only_b: Images ``b`` keeps and ``a`` loses.
        both: Images both keep.
        p_value: Two-sided exact McNemar p-value (1.0 without discordant images).
    """

    n: int
    only_a: int
    only_b: int
    both: int
    p_value: float

    def significant(self, level: float = 0.05) -> bool:
        """True when the two models differ at ``level``."""
        return self.p_value < level

    def as_dict(self) -> dict:
        """Plain data (for report.json)."""
        return asdict(self)


def mcnemar(a: str | list[bool], b: str | list[bool]) -> Paired:
    """Compare two per-image outcomes (``"1"``/``"0"`` strings or booleans) on the same images.

    Raises:
        ValueError: The two outcomes cover different numbers of images.
    """
    if len(_flags(a)) != len(_flags(b)):
        raise ValueError(f"paired outcomes differ in length: {len(a)} and {len(b)} images")
    return sign_test([a], [b])  # one outcome per image: the sign test is McNemar's


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: twice the smaller binomial tail at p = 1/2, capped at 1."""
    _check_counts(0, only_a)
    _check_counts(0, only_b)
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    return min(1.0, 2.0 * binom_cdf(min(only_a, only_b), discordant, 0.5))


def sign_test(a: list[str], b: list[str]) -> Paired:
    """Two models on the same images, each image with several outcomes per model.

    ``a`` and ``b`` hold one "0"/"1" string (or bool list) per repetition (a seed, a
    severity), all over the same images in the same order. Per image, the outcomes each model
    got right are counted; the exact two-sided sign test over the images whose counts differ
    decides. With one repetition this is :func:`mcnemar`.

    Returns:
        A :class:`Paired` over images: ``only_a`` the images ``a`` gets right more often,
        ``only_b`` those ``b`` does, ``both`` the ties with at least one outcome right.

    Raises:
        ValueError: No repetitions, or the repetitions differ in number or in images.
    """
    if not a or len(a) != len(b):
        raise ValueError(f"paired repetitions differ: {len(a)} and {len(b)}")
    flags = [_flags(r) for r in (*a, *b)]
    if len({len(f) for f in flags}) != 1:
        raise ValueError("paired outcomes differ in length")
    count_a = [sum(col) for col in zip(*flags[: len(a)], strict=True)]
    count_b = [sum(col) for col in zip(*flags[len(a) :], strict=True)]
    pairs = list(zip(count_a, count_b, strict=True))
    only_a = sum(1 for u, v in pairs if u > v)
    only_b = sum(1 for u, v in pairs if v > u)
    both = sum(1 for u, v in pairs if u == v > 0)
    return Paired(len(pairs), only_a, only_b, both, mcnemar_p(only_a, only_b))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (each at most 1).

    Comparing each adjusted value with a level keeps the chance of any false "differs" among
    the tests at that level.
    """
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _flags(values: str | list[bool]) -> list[bool]:
    if isinstance(values, str):
        return [c == "1" for c in values]
    return [bool(v) for v in values]


def _bisect(too_far, upward: bool) -> float:
    """The boundary p in [0, 1] where ``too_far(p)`` flips, by bisection."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if too_far(mid) == upward:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return (lo + hi) / 2


def _check_counts(successes: int, n: int) -> None:
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"counts out of range: {successes} of {n}")
