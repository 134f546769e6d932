"""Per-layer pruning ratios for an objective target, guided by robust sensitivity.

Each group has two curves measured on the starting model (:mod:`sensitivity`): the robust
accuracy it loses and the objective it saves when only it is pruned, at each ratio. The
allocation raises, one small increment at a time, the ratio of the group that costs the fewest
points per unit of objective saved, until the estimated objective reaches the target. The
estimate adds the groups' savings, which overstates them a little (a layer whose input and
output channels both shrink saves less than the sum), so the caller measures the real figure and
asks again with a lower target (:func:`allocate_until`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

INCREMENT = 0.05


@dataclass
class Curve:
    """A piecewise-linear curve through (0, 0) and measured points, extended by its last slope."""

    xs: list[float]
    ys: list[float]

    @classmethod
    def of(cls, points: list[tuple[float, float]], monotone: bool = True) -> Curve:
        """The curve through ``points`` (and the origin); ``monotone`` takes running maxima."""
        pts = sorted([(0.0, 0.0), *points])
        ys, best = [], 0.0
        for _, y in pts:
            best = max(best, y) if monotone else y
            ys.append(best)
        return cls([x for x, _ in pts], ys)

    def __call__(self, x: float) -> float:
        """The curve's value at ``x``."""
        i = min(max(bisect_left(self.xs, x), 1), len(self.xs) - 1)
        x0, x1, y0, y1 = self.xs[i - 1], self.xs[i], self.ys[i - 1], self.ys[i]
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 > x0 else y1


def curves(rows: list[dict], start_value: float, key: str) -> dict[str, tuple[Curve, Curve]]:
    """``{group: (drop curve, saving curve)}`` from sensitivity rows (``key``: macs or params)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["layer"], []).append(row)
    return {
        name: (
            Curve.of([(r["ratio"], max(r["drop"], 0.0)) for r in rs]),
            Curve.of([(r["ratio"], start_value - r[key]) for r in rs]),
        )
        for name, rs in groups.items()
    }


def allocate(
    group_curves: dict[str, tuple[Curve, Curve]],
    floor: dict[str, float],
    saving_needed: float,
    max_ratio: float,
) -> dict[str, float]:
    """Ratios (at least ``floor``) whose summed estimated saving reaches ``saving_needed``.

    Returns:
        The ratios by group; they fall short of the saving only when every group is at
        ``max_ratio`` or saves nothing more.
    """
    ratios = {g: floor.get(g, 0.0) for g in group_curves}
    saved = sum(group_curves[g][1](r) for g, r in ratios.items())
    while saved < saving_needed - 1e-9 * abs(saving_needed):
        best, best_cost, best_gain = None, float("inf"), 0.0
        for g, (drop, saving) in group_curves.items():
            nxt = min(ratios[g] + INCREMENT, max_ratio)
            gain = saving(nxt) - saving(ratios[g])
            if nxt <= ratios[g] or gain <= 0:
                continue
            cost = (max(drop(nxt) - drop(ratios[g]), 0.0) + 1e-3) / gain
            if cost < best_cost:
                best, best_cost, best_gain = g, cost, gain
        if best is None:
            break
        ratios[best] = round(min(ratios[best] + INCREMENT, max_ratio), 6)
        saved += best_gain
    return ratios


def allocate_until(
    group_curves: dict[str, tuple[Curve, Curve]],
    floor: dict[str, float],
    start_value: float,
    target_value: float,
    max_ratio: float,
    real_value: Callable[[dict[str, float]], float],
    tries: int = 8,
) -> tuple[dict[str, float], float]:
    """Allocate, measure the real objective, and ask for more saving until it meets the target.

    Returns:
        The ratios and their real objective value (above the target only when no group could
        give more within ``max_ratio``, or after ``tries`` corrections).
    """
    needed = start_value - target_value
    ratios, value = dict(floor), start_value
    for _ in range(tries):
        ratios = allocate(group_curves, floor, needed, max_ratio)
        value = real_value(ratios)
        if value <= target_value * 1.01:
            break
        real_saving = start_value - value
        if real_saving <= 0:
            needed += value - target_value
        else:  # the estimate overstated the saving by about this factor
            needed *= (start_value - target_value) / real_saving
    return ratios, value
