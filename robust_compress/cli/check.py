"""The ``robust-compress check`` command: a robustness gate for CI pipelines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from robust_compress.cli.common import guarded
from robust_compress.cli.common import out as stdout
from robust_compress.errors import UserError

Opt = typer.Option


def register(app: typer.Typer) -> None:
    """Add the ``check`` command to ``app``."""
    app.command(name="check")(guarded(check))


def check(
    run: Annotated[Path, typer.Argument(help="A run folder (or its report.json).")],
    max_robust_drop: Annotated[
        float | None, Opt(min=0.0, help="Most percentage points robust accuracy may drop.")
    ] = None,
    min_robust: Annotated[
        float | None, Opt(min=0.0, help="Least final robust accuracy: 0.62 or 62 (%).")
    ] = None,
    max_macs_ratio: Annotated[
        float | None, Opt(min=0.0, help="Most final MACs / dense MACs.")
    ] = None,
    require_checks: Annotated[bool, Opt(help="Every audit check must have passed.")] = False,
) -> None:
    """Exit 0 when the run meets every threshold, 1 (one line per failure) when not.

    Bad input (no run folder, no report.json, no threshold) exits 2.
    """
    from robust_compress.report.gate import Thresholds, evaluate, read_run_report

    thresholds = Thresholds(max_robust_drop, min_robust, max_macs_ratio, require_checks)
    if not thresholds.any():
        raise UserError(
            "give at least one threshold: --max-robust-drop, --min-robust, --max-macs-ratio "
            "or --require-checks."
        )
    verdicts = evaluate(read_run_report(run), thresholds)
    for verdict in verdicts:
        stdout.print(verdict.line(), markup=False, highlight=False)
    if not all(v.passed for v in verdicts):
        sys.exit(1)
