"""The audit's outputs: a markdown section, ``audit.json``, ``audit.md`` and the eps plot."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from robust_compress.attacks.registry import label

log = logging.getLogger(__name__)

NORM_NAMES = {"linf": "L-inf", "l2": "L2"}


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal (``n/a`` for None)."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def ci_text(interval) -> str:
    """A 95% interval as ``72.2-77.6%`` (``n/a`` without one)."""
    if not interval:
        return "n/a"
    low, high = interval
    return f"{100 * low:.1f}-{100 * high:.1f}%"


def attack_label(name: str, entry: dict) -> str:
    """An attack's name with its budget, e.g. ``PGD-20 x2 restarts``, ``APGD-T-20 (3 targets)``."""
    s = entry.get("settings", {})
    text = label(name)
    if "steps" in s and name != "fgsm_rs":
        text += f"-{s['steps']}"
    if s.get("restarts", 1) > 1:
        text += f" x{s['restarts']} restarts"
    if "targets" in s:
        text += f" ({s['targets']} targets)"
    if "queries" in s:
        text += f" ({s['queries']} queries)"
    return text


def _attack_rows(result: dict) -> list[str]:
    n = result["samples"]
    rows = [
        "| attack | source | run on | figure | robust accuracy | seconds |",
        "|---|---|---|---|---:|---:|",
        f"| none (clean) | {result['target_kind']} | {n} | - | {pct(result['clean'])} | - |",
    ]
    for name, e in result["per_attack"].items():
        if e.get("skipped"):
            rows.append(f"| {label(name)} | {e['source']} | - | - | not run | - |")
            continue
        pool = "clean-correct" if e["mode"] == "alone" else "still robust"
        rows.append(
            f"| {attack_label(name, e)} | {e['source']} | {e['attacked']} {pool} | {e['mode']} "
            f"| {pct(e['accuracy'])} | {e['seconds']:.1f} |"
        )
    return rows


def _warning(result: dict) -> list[str]:
    failed = [c for c in result["checks"] if not c["passed"]]
    if not failed:
        return []
    names = ", ".join(c["name"] for c in failed)
    return [
        f"> **WARNING: {len(failed)} check(s) FAILED ({names}).** The robust accuracy below "
        "may overstate the model's robustness (weak attacks, gradient masking) or not hold "
        "for the deployed file; see the checks at the end of this section.",
        "",
    ]


def _sweep_rows(result: dict) -> list[str]:
    sweep = result["eps_sweep"]
    if not sweep:
        return []
    attacks = list(dict.fromkeys(r["attack"] for r in sweep))
    table = {(r["eps"], r["attack"]): r["accuracy"] for r in sweep}
    lines = [
        "",
        f"Accuracy vs eps (each attack alone, first {sweep[0]['samples']} examples):",
        "",
        "| eps | " + " | ".join(_sweep_label(a, sweep) for a in attacks) + " |",
        "|---:|" + "---:|" * len(attacks),
    ]
    for eps in sorted({r["eps"] for r in sweep}):
        cells = " | ".join(pct(table.get((eps, a))) for a in attacks)
        lines.append(f"| {eps:.4g} | {cells} |")
    return lines


def _check_rows(result: dict) -> list[str]:
    off = "Sanity checks: not run (sanity_checks off)."
    if result["target_kind"] == "onnx":  # a recipe's audit stage checks the twin's gradients
        off = "Sanity checks: not run on the file (sanity_checks off; a recipe's audit runs them "
        off += "in the twin's audit, on the same gradients)."
    lines = [] if result["sanity_checks"] else ["", off]
    if not result["checks"]:
        return lines
    lines += ["", "Checks:", "", "| check | result | numbers |", "|---|---|---|"]
    for c in result["checks"]:
        verdict = "skipped" if c["skipped"] else "passed" if c["passed"] else "**FAILED**"
        lines.append(f"| {c['title']} | {verdict} | {c['detail']} |")
    return lines


def audit_markdown(result: dict) -> str:
    """The audit as a markdown section (no heading): tables, worst case, checks."""
    n = result["samples"]
    norm = NORM_NAMES[result["norm"]]
    lines = [
        f"Threat model: {norm} ball of radius {result['eps']:g} in pixel space (inputs in "
        f"[0, 1]); the first {n} test examples of {result['dataset'] or 'the dataset'}; "
        f"seed {result['seed']}; strength {result['budget'].get('strength', 'default')}.",
        "",
        f"Target: {result['target']}.",
        "",
        *_warning(result),
        *_attack_rows(result),
        "",
        f"**Robust accuracy (per-example worst case over the ensemble): "
        f"{pct(result['robust'])} ({result['robust_count']} of {n} examples; 95% interval "
        f"{ci_text(result.get('robust_ci'))})**; clean {pct(result['clean'])} "
        f"({result['clean_correct']} of {n}; {ci_text(result.get('clean_ci'))}).",
        "",
        "An example is robust only if it is classified correctly and every attack failed on "
        "it. *alone*: the attack ran on every correctly classified example and its figure is "
        "its own. *cumulative*: it ran only on the examples every attack above it failed on "
        "(AutoAttack's practice), so its figure is the robust accuracy after it and all "
        "attacks above.",
    ]
    if result["target_kind"] == "onnx" and all(
        e.get("skipped") or e["source"].startswith("black-box")
        for e in result["per_attack"].values()
    ):
        lines += [
            "",
            "Black-box attacks only (no torch twin): gradient attacks were not run (gradients "
            "are never taken from ONNX Runtime), so this figure is an upper bound that an "
            "audit with the torch twin may lower by several points.",
        ]
    lines += _sweep_rows(result) + _check_rows(result)
    lines += ["", f"Audit time: {result['seconds']:.0f} s."]
    return "\n".join(lines)


def _sweep_label(attack: str, rows: list[dict]) -> str:
    queries = next((r.get("queries") for r in rows if r["attack"] == attack), None)
    return f"{label(attack)}-{queries}q" if queries else label(attack)


def plot_sweep(result: dict, path: Path) -> Path | None:
    """Accuracy vs eps from the sweep, with the ensemble's worst case at the audit eps."""
    sweep = result["eps_sweep"]
    if not sweep:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for attack in dict.fromkeys(r["attack"] for r in sweep):
        rows = sorted((r for r in sweep if r["attack"] == attack), key=lambda r: r["eps"])
        ax.plot(
            [r["eps"] for r in rows],
            [r["accuracy"] for r in rows],
            "o-",
            label=f"{_sweep_label(attack, rows)} alone (first {rows[0]['samples']})",
        )
    ax.plot(
        [result["eps"]],
        [result["robust"]],
        "r*",
        markersize=12,
        label=f"ensemble worst case (n={result['samples']})",
    )
    ax.axhline(result["clean"], color="grey", linestyle="--", label="clean")
    ax.set_xlabel(f"eps ({NORM_NAMES[result['norm']]}, pixel space)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Accuracy vs eps")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(result: dict, out_dir: Path) -> list[Path]:
    """Write ``audit.json``, ``audit.md`` and ``accuracy_vs_eps.png`` into ``out_dir``."""
    from robust_compress.files import atomic_write_bytes

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        atomic_write_bytes(out_dir / "audit.json", json.dumps(result, indent=2).encode()),
        atomic_write_bytes(
            out_dir / "audit.md", ("# Adversarial audit\n\n" + result["markdown"] + "\n").encode()
        ),
    ]
    try:
        plot = plot_sweep(result, out_dir / "accuracy_vs_eps.png")
        if plot is not None:
            paths.append(plot)
    except ImportError as exc:  # matplotlib is a dependency; never lose the audit over a plot
        log.warning("no plot: %s", exc)
    return paths
