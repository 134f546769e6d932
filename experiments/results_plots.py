"""One plot per claim for docs/img/ (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from claims import BITS, COMPRESSIONS, CRITERIA, FINETUNES, RATIOS, Claim  # noqa: E402


def plot_claim(claim: Claim, rows: dict[str, dict], path: Path) -> None:
    """Draw the plot of ``claim`` from its measured rows into ``path``."""
    fig, ax = plt.subplots(figsize=(7, 4))
    if claim.number == 2:
        _lines(ax, rows)
    elif claim.number == 3:
        _bits(ax, rows)
    elif claim.number == 4:
        _grouped(ax, rows)
    else:
        _bars(ax, rows)
    ax.set_ylabel("robust accuracy (audit, 1,000 images)")
    ax.set_title(f"Claim {claim.number}: {claim.title}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pct(rows: dict, label: str) -> float:
    return 100 * rows[label]["robust"]


def _lines(ax, rows: dict) -> None:
    for criterion in CRITERIA:
        ys = [_pct(rows, f"{criterion} {r:.0%}") for r in RATIOS]
        ax.plot([100 * r for r in RATIOS], ys, marker="o", label=criterion)
    ax.set_xlabel("channels removed (%)")
    ax.legend()


def _bits(ax, rows: dict) -> None:
    ys = [_pct(rows, f"compressed, {b}-bit weights") for b in BITS]
    ax.plot(BITS, ys, marker="o", label="compressed (50% pruned), by weight bits")
    ax.axhline(_pct(rows, "compact: int8"), color="grey", ls="--", label="compact, int8")
    ax.set_xlabel("weight bit width")
    ax.set_xticks(BITS)
    ax.legend()


def _grouped(ax, rows: dict) -> None:
    width = 0.25
    for i, ft in enumerate(FINETUNES):
        xs = [j + (i - 1) * width for j in range(len(COMPRESSIONS))]
        ys = [_pct(rows, f"{label}, fine-tune {ft}") for label, _, _ in COMPRESSIONS]
        ax.bar(xs, ys, width, label=f"fine-tune: {ft}")
    ref = _pct(rows, "reference: adversarial training from the start")
    ax.axhline(ref, color="black", ls="--", label="adversarial training from the start")
    ax.set_xticks(range(len(COMPRESSIONS)), [label for label, _, _ in COMPRESSIONS])
    ax.legend(fontsize=8)


def _bars(ax, rows: dict) -> None:
    labels = list(rows)
    ax.bar(range(len(labels)), [_pct(rows, k) for k in labels], color="tab:blue")
    ax.set_xticks(range(len(labels)), [_wrap(k) for k in labels], fontsize=7)


def _wrap(text: str, width: int = 18) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) > width and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join([*lines, line])
