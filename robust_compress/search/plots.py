"""Plots of robust sensitivity (heat maps) and of a search (the Pareto front), headless."""

from __future__ import annotations

import io


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heat_map(rows: list[dict], column: str, title: str) -> bytes:
    """PNG of the drop (points) by layer (rows) and ``column`` (ratio or bits)."""
    plt = _pyplot()
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    columns = sorted({r[column] for r in rows})
    grid = [[float("nan")] * len(columns) for _ in layers]
    for r in rows:
        grid[layers.index(r["layer"])][columns.index(r[column])] = r["drop"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(columns), 1.0 + 0.35 * len(layers)))
    image = ax.imshow(grid, cmap="Reds", aspect="auto", vmin=0)
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(columns)), [f"{c:g}" for c in columns])
    ax.set_yticks(range(len(layers)), layers, fontsize=7)
    ax.set_xlabel(column)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="robust drop (points)")
    return _png(fig, plt)


def pareto(steps: list[dict], objective: str, budget_floor: float, title: str) -> bytes:
    """PNG of validation robust accuracy against the objective, every candidate a point."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for accepted, marker, label in ((True, "o", "within budget"), (False, "x", "over budget")):
        pts = [s for s in steps if s["accepted"] == accepted]
        ax.plot(
            [s["objective"] for s in pts],
            [s["robust"] for s in pts],
            marker,
            linestyle="none",
            label=label,
        )
    front = pareto_front(steps)
    ax.plot(
        [s["objective"] for s in front],
        [s["robust"] for s in front],
        "-",
        alpha=0.5,
        label="Pareto front",
    )
    for s in steps:
        ax.annotate(
            str(s["step"]),
            (s["objective"], s["robust"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.axhline(budget_floor, color="grey", linestyle="--", label="budget")
    ax.set_xscale("log")
    ax.set_xlabel(objective)
    ax.set_ylabel("validation robust accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _png(fig, plt)


def pareto_front(points: list[dict]) -> list[dict]:
    """The points no other point beats on both objective (lower) and robust accuracy."""
    ordered = sorted(points, key=lambda p: (p["objective"], -p["robust"]))
    front, best = [], -1.0
    for p in ordered:
        if p["robust"] > best:
            front.append(p)
            best = p["robust"]
    return front


def _png(fig, plt) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def write_sensitivity_plots(session, report: dict, prefix: str = "sensitivity") -> list[str]:
    """Heat maps of a sensitivity report into the run folder's ``plots/``; their names."""
    if session.out is None:
        return []
    names = []
    for key, column in (("prune", "ratio"), ("bits", "bits")):
        if report.get(key):
            name = f"plots/{prefix}-{key}.png"
            title = (
                f"robust drop when only one layer is {'pruned' if key == 'prune' else 'quantized'}"
            )
            session.out.write_bytes(name, heat_map(report[key], column, title))
            names.append(name)
    return names


def write_search_plots(session, result: dict) -> None:
    """The search's heat maps and Pareto plot into ``plots/``; their names go into ``result``."""
    names = write_sensitivity_plots(session, result["sensitivity"], "search-sensitivity")
    if session.out is not None:
        floor = result["start"]["robust"] - result["budget"]["max_robust_drop"] / 100
        png = pareto(result["steps"], result["objective"], floor, "search candidates")
        session.out.write_bytes("plots/search-pareto.png", png)
        names.append("plots/search-pareto.png")
    result["plots"] = names
