"""The robustness gate of ``robust-compress check``: a run's report against thresholds.

Each threshold gives one :class:`Verdict`; a CI job fails when any of them failed. Accuracies
are given as fractions (0.62) or as percentages (62); drops in percentage points.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from robust_compress.errors import UserError


@dataclass(frozen=True)
class Thresholds:
    """What ``check`` asks of a run (None: not checked)."""

    max_robust_drop: float | None = None  # percentage points, dense minus final
    min_robust: float | None = None  # the final model's audited robust accuracy
    max_macs_ratio: float | None = None  # final MACs / dense MACs
    require_checks: bool = False  # every audit check passed

    def any(self) -> bool:
        """Whether any threshold is set."""
        return self.require_checks or any(
            v is not None for v in (self.max_robust_drop, self.min_robust, self.max_macs_ratio)
        )


@dataclass(frozen=True)
class Verdict:
    """One threshold's outcome, as a line for the CI log."""

    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        """``ok  NAME: detail`` or ``FAIL NAME: detail``."""
        return f"{'ok  ' if self.passed else 'FAIL'} {self.name}: {self.detail}"


def read_run_report(run: Path) -> dict:
    """The ``report.json`` of a run folder (or the file itself).

    Raises:
        UserError: The folder or its report is missing or unreadable.
    """
    path = run / "report.json" if run.is_dir() else run
    if not run.exists():
        raise UserError(f"{run}: no such run folder.")
    if not path.is_file():
        raise UserError(f"{run}: no report.json; has the run finished? (robust-compress run ...)")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable report: {exc}") from None


def _fraction(value: float) -> float:
    return value / 100 if value > 1 else value


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def evaluate(report: dict, t: Thresholds) -> list[Verdict]:
    """One verdict per threshold set in ``t``, in the order of the options."""
    metrics, models = report.get("metrics", {}), report.get("models", {})
    final = metrics.get("final", {}).get("robust")
    dense = metrics.get("dense", {}).get("robust")
    out: list[Verdict] = []
    if t.max_robust_drop is not None:
        if final is None or dense is None:
            out.append(
                Verdict("robust drop", False, "the run has no audit of both dense and final")
            )
        else:
            drop = 100 * (dense - final)
            text = f"{drop:.1f} points ({_pct(dense)} dense -> {_pct(final)} final)"
            out.append(
                Verdict(
                    "robust drop", drop <= t.max_robust_drop, f"{text}, max {t.max_robust_drop:g}"
                )
            )
    if t.min_robust is not None:
        need = _fraction(t.min_robust)
        if final is None:
            out.append(Verdict("robust accuracy", False, "the final model was not audited"))
        else:
            out.append(
                Verdict("robust accuracy", final >= need, f"{_pct(final)}, min {_pct(need)}")
            )
    if t.max_macs_ratio is not None:
        out.append(_macs(models, t.max_macs_ratio))
    if t.require_checks:
        out.append(_checks(report.get("audit") or {}))
    return out


def _macs(models: dict, limit: float) -> Verdict:
    dense, final = models.get("dense", {}).get("macs"), models.get("final", {}).get("macs")
    if not dense or final is None:
        return Verdict("MACs ratio", False, "the report has no MACs of both models")
    ratio = final / dense
    return Verdict(
        "MACs ratio", ratio <= limit, f"{ratio:.3f} ({final:,} / {dense:,}), max {limit:g}"
    )


def _checks(audit: dict) -> Verdict:
    failed, total = [], 0
    for model, result in audit.items():
        for check in result.get("checks", []) if isinstance(result, dict) else []:
            total += 1
            if not check.get("passed", True) and not check.get("skipped", False):
                failed.append(f"{model}: {check['name']}")
    if total == 0:
        return Verdict("audit checks", False, "the run has no audit checks")
    if failed:
        return Verdict(
            "audit checks", False, f"{len(failed)} of {total} failed: {', '.join(failed)}"
        )
    return Verdict("audit checks", True, f"all {total} passed")
