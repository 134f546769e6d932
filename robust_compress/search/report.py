"""The sensitivity and search sections of ``report.md``."""

from __future__ import annotations


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def sensitivity_table(rows: list[dict], column: str) -> list[str]:
    """Drop in points by layer (rows) and ratio or bits (columns)."""
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    columns = sorted({r[column] for r in rows})
    cell = {(r["layer"], r[column]): r["drop"] for r in rows}
    lines = [
        f"| layer | {' | '.join(f'{column} {c:g}' for c in columns)} |",
        f"|---|{'---|' * len(columns)}",
    ]
    for layer in layers:
        values = " | ".join(f"{cell.get((layer, c), float('nan')):.1f}" for c in columns)
        lines.append(f"| {layer} | {values} |")
    return lines


def _sensitivity(report: dict, title: str) -> list[str]:
    lines = [
        "",
        f"## {title}",
        "",
        f"Robust drop in points ({report.get('attack', '')}), "
        "when only that layer is compressed (no fine-tuning).",
        "",
    ]
    if report.get("prune"):
        lines += sensitivity_table(report["prune"], "ratio") + [""]
    if report.get("bits"):
        lines += sensitivity_table(report["bits"], "bits") + [""]
    lines += [f"![{p}]({p})" for p in report.get("plots", [])]
    return lines


def _search(search: dict) -> list[str]:
    budget = search["budget"]
    lines = [
        "",
        "## Search",
        "",
        f"Budget: at most {budget['max_robust_drop']:g} points of robust accuracy below the "
        f"start ({budget['attack']}); objective: {search['objective']}. {search['stopped']}.",
        "",
        "| step | accepted | objective | params | MACs | clean | robust | drop (pts) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in search["steps"]:
        lines.append(
            f"| {s['step']} | {'yes' if s['accepted'] else 'no'} | {s['objective']:.4g} | "
            f"{s['params']:,} | {s['macs']:,} | {_pct(s['clean'])} | {_pct(s['robust'])} | "
            f"{s.get('drop', 0.0):.1f} |"
        )
    ratios = ", ".join(f"{k} {v:.2f}" for k, v in search["layer_ratios"].items()) or "none"
    bits = ", ".join(f"{k} {v}" for k, v in search["layer_bits"].items()) or "unchanged"
    together = search.get("bits_robust")
    together = f" (all together, weights only: robust {_pct(together)})" if together else ""
    lines += [
        "",
        f"Accepted step {search['accepted_step']}; ratios: {ratios}.",
        f"Weight bits per layer for the quantize stage: {bits}{together}.",
        "",
    ]
    sens = {**search["sensitivity"], "plots": search.get("plots", [])}
    return lines + _sensitivity(sens, "Search: sensitivity of the starting model")


def search_sections(report: dict) -> list[str]:
    """The markdown of a run's sensitivity and search sections (empty without them)."""
    lines: list[str] = []
    if report.get("sensitivity"):
        lines += _sensitivity(report["sensitivity"], "Robust sensitivity")
    if report.get("search"):
        lines += _search(report["search"])
    return lines
