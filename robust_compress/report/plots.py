"""Plots of a run (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path


def stage_plot(report: dict, path: Path) -> Path:
    """Clean and PGD-10 accuracy of every stage against its MACs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # export and audit do not change the model: plot the stages that do
    rows = [r for r in report["per_stage"] if r["kind"] in ("train", "prune", "quantize")]
    rows = rows or report["per_stage"]
    fig, ax = plt.subplots(figsize=(6, 4))
    macs = [r["macs"] / 1e6 for r in rows]
    ax.plot(macs, [r["clean"] for r in rows], "o-", label="clean")
    ax.plot(macs, [r["pgd10"] for r in rows], "s--", label="PGD-10")
    for i, (r, x) in enumerate(zip(rows, macs, strict=True)):
        ax.annotate(
            r["name"],
            (x, r["clean"]),
            fontsize=7,
            xytext=(4, 4 + 9 * (i % 3)),
            textcoords="offset points",
        )
    ax.set_xlabel("MACs (millions)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{report['recipe']}: accuracy per stage")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
