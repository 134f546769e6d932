"""Write docs/search-results.md from the reports of ``make search`` (experiments/search.py)."""

from __future__ import annotations

import math
from pathlib import Path

ROWS = [
    ("search-2pts", "search, budget 2 points (objective MACs)"),
    ("uniform-50", "uniform L1 50%"),
    ("uniform-70", "uniform L1 70%"),
    ("uniform-90", "uniform L1 90%"),
    ("uniform-70-distill", "uniform L1 70% + distillation (weight 0.5)"),
]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` on ``n`` images, in points."""
    return 100 * math.sqrt(p * (1 - p) / n)


def _row(label: str, report: dict, dense_macs: int) -> str:
    models, metrics = report["models"]["final"], report["metrics"]["final"]
    int8 = report.get("onnx", {}).get("int8", {})
    return (
        f"| {label} | {models['macs']:,} | {models['macs'] / dense_macs:.3f} | "
        f"{models['params']:,} | {int8.get('bytes', 0):,} | {_pct(metrics['clean'])} | "
        f"{_pct(metrics['robust'])} |"
    )


def _dense_row(report: dict) -> str:
    """The base: its size from the search's start, its figures from the search run's audit."""
    start, audit = report["search"]["start"], report["audit"]["dense"]
    return (
        f"| dense (PGD-5 base, fp32) | {start['macs']:,} | 1.000 | {start['params']:,} | - | "
        f"{_pct(audit['clean'])} | {_pct(audit['robust'])} |"
    )


def _verdicts(reports: dict, dense: dict) -> list[str]:
    search = reports["search-2pts"]
    n = dense["audit"]["dense"]["samples"]
    d_rob, s_rob = dense["audit"]["dense"]["robust"], search["metrics"]["final"]["robust"]
    ratio = search["models"]["final"]["macs"] / dense["search"]["start"]["macs"]
    gap = 100 * (d_rob - s_rob)
    se = math.hypot(_se(d_rob, n), _se(s_rob, n))
    lines = [
        f"- **MACs**: the searched model has {ratio:.3f}x the dense MACs "
        f"({'at or below' if ratio <= 0.15 else 'above'} the 0.15x asked for).",
        f"- **Robustness**: its audited robust accuracy is {_pct(s_rob)} against the dense "
        f"model's {_pct(d_rob)}: {gap:.1f} points lower "
        f"({'within' if gap <= 2 else 'more than'} 2 points; the unpaired standard error of a "
        f"difference of two figures on {n} images is about {se:.1f} points).",
    ]
    accepted = next(s for s in search["search"]["steps"][::-1] if s["accepted"])
    uniform = min(
        (reports[name] for name in ("uniform-50", "uniform-70", "uniform-90")),
        key=lambda r: abs(r["models"]["final"]["macs"] / dense["search"]["start"]["macs"] - ratio),
    )
    start_gap = 100 * (search["search"]["start"]["robust"] - d_rob)
    rest = gap - accepted["drop"]
    lines.append(
        f"- **Why the audit sees more loss than the budget**: the search measured "
        f"{accepted['drop']:.1f} points of drop on the validation split (PGD-10, float model, "
        f"before QAT); the audit measures the int8 model with the ensemble on the test set. "
        f"From the validation figure to the audit the dense model loses {start_gap:.1f} "
        f"points and the searched one {start_gap + rest:.1f}; the difference, {rest:.1f} "
        f"points, is what int8 QAT with the chosen bit widths and the stronger attack cost "
        f"the smaller model. The budget holds for the figure it is defined on, not for the "
        f"audit."
    )
    u_ratio = uniform["models"]["final"]["macs"] / dense["search"]["start"]["macs"]
    u_rob = uniform["metrics"]["final"]["robust"]
    better = "better than" if s_rob > u_rob and ratio <= u_ratio else "not better than"
    lines.append(
        f"- **Against uniform pruning** at the nearest size ({u_ratio:.3f}x MACs, audited "
        f"{_pct(u_rob)}): the searched model ({ratio:.3f}x, {_pct(s_rob)}) is {better} it."
    )
    plain, dist = reports["uniform-70"], reports["uniform-70-distill"]
    p_rob, q_rob = plain["metrics"]["final"]["robust"], dist["metrics"]["final"]["robust"]
    diff = 100 * (q_rob - p_rob)
    lines.append(
        f"- **Distillation** at uniform 70%, same epochs: {_pct(q_rob)} with, {_pct(p_rob)} "
        f"without ({diff:+.1f} points; "
        f"{'beyond' if abs(diff) > 2 * se else 'within'} two standard errors, {2 * se:.1f})."
    )
    return lines


def _search_steps(search: dict) -> list[str]:
    lines = [
        "| step | accepted | MACs | params | validation clean | validation robust | drop |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in search["steps"]:
        lines.append(
            f"| {s['step']} | {'yes' if s['accepted'] else 'no'} | {s['macs']:,} | "
            f"{s['params']:,} | {_pct(s['clean'])} | {_pct(s['robust'])} | "
            f"{s.get('drop', 0.0):.1f} |"
        )
    ratios = ", ".join(f"`{k}` {v:.2f}" for k, v in search["layer_ratios"].items())
    bits = ", ".join(f"`{k}` {v}" for k, v in search["layer_bits"].items())
    rejected = [s["step"] for s in search["steps"] if not s["accepted"]]
    last = next(s for s in search["steps"][::-1] if s["accepted"])
    ending = (
        f"The search stopped: {search['stopped']}"
        if not search["reached_target"]
        else f"The search ran to its last aim and ended at "
        f"{last['macs'] / search['start']['macs']:.3f} of the start's MACs"
    )
    retried = f"; steps over budget, each retried smaller: {rejected}" if rejected else ""
    return lines + [
        "",
        f"{ending}{retried}. Ratios of the accepted model: {ratios}. Weight bits chosen for "
        f"the quantize stage: {bits} (all together, weights rounded: validation robust "
        f"{_pct(search.get('bits_robust'))}).",
    ]


def write_doc(reports: dict, path: Path) -> None:
    """Write the page from ``{run name: report.json}``."""
    dense = reports["search-2pts"]
    dense_macs = dense["search"]["start"]["macs"]
    search = dense["search"]
    table = [
        "| model | MACs | x dense | params | int8 file (bytes) | clean | audited robust |",
        "|---|---|---|---|---|---|---|",
        _dense_row(dense),
    ]
    table += [_row(label, reports[name], dense_macs) for name, label in ROWS]
    text = [
        "# Search against uniform pruning, and robust distillation (generated)",
        "",
        "Generated by `make search` (experiments/search.py, experiments/search_doc.py) from the",
        "runs' `report.json`; nothing on this page is typed by hand. The recipes are",
        "recipes/experiments/s-base.yaml, s-search.yaml and s-uniform.yaml.",
        "",
        "Setup: `cnn_small` trained with PGD-5 for 4 epochs on Fashion-MNIST (all 60,000 training",
        "images but the last 1,000, which are the validation split the search measures on). Every",
        "compressed model starts from that checkpoint and is fine-tuned with PGD-3 on the first",
        f"30,000 training images for {search['finetune_epochs_used']} epochs in all (the search:",
        "one per step it tried, rejected steps included; each uniform run gets as many), then gets",
        "one epoch of int8 QAT under PGD-3, and is audited on the first 1,000 test images",
        "(FGSM, PGD-20, APGD-CE, APGD-DLR, Square; worst case per image) at L-inf eps 0.1.",
        "The dense row is the audit of the base itself.",
        "",
        *table,
        "",
        *_verdicts(reports, dense),
        "",
        "## The search's steps (validation split)",
        "",
        f"Budget: {search['budget']['max_robust_drop']:g} points, {search['budget']['attack']}.",
        "",
        *_search_steps(search),
        "",
        "![Pareto plot](img/search-pareto.png)",
        "",
        "## Robust sensitivity of the base (validation split, no fine-tuning)",
        "",
        "![pruning sensitivity](img/search-sensitivity-prune.png)",
        "![bit sensitivity](img/search-sensitivity-bits.png)",
        "",
    ]
    path.write_text("\n".join(text))
