"""The ``robust-compress audit`` command: audit a run folder, a checkpoint or an ONNX file."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from robust_compress.audit.profiles import DEFAULT_ATTACKS, STRENGTHS
from robust_compress.cli.common import console, guarded, setup_logging
from robust_compress.cli.common import out as stdout
from robust_compress.errors import UserError

Opt = typer.Option
STRENGTH_HELP = (
    f"{' or '.join(STRENGTHS)}: autoattack is AutoAttack's standard budget (APGD 100 steps, "
    "9 APGD-T targets, Square 5000 queries; for a GPU). Explicit options win."
)


def _floats(text: str | None, option: str) -> list[float]:
    if not text:
        return []
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UserError(
            f"{option} takes comma-separated numbers, e.g. 0.05,0.2; got {text!r}."
        ) from None


def _names(text: str) -> list[str]:
    return [v for v in text.replace(" ", "").split(",") if v]


def print_result(label: str, result: dict) -> None:
    """Print one audit as rich tables; failed checks in red."""
    from rich.table import Table

    from robust_compress.attacks.registry import label
    from robust_compress.audit.report import attack_label

    n = result["samples"]
    table = Table(title=f"audit: {label} ({result['target']})", title_justify="left")
    for col in ("attack", "source", "run on", "figure", "robust acc.", "s"):
        table.add_column(col, justify="right" if col in ("robust acc.", "s") else "left")
    table.add_row("none (clean)", result["target_kind"], str(n), "-", f"{result['clean']:.1%}", "-")
    for name, e in result["per_attack"].items():
        if e.get("skipped"):
            table.add_row(label(name), e["source"], "-", "-", "not run", "-")
            continue
        pool = "clean-correct" if e["mode"] == "alone" else "still robust"
        table.add_row(
            attack_label(name, e),
            e["source"],
            f"{e['attacked']} {pool}",
            e["mode"],
            f"{e['accuracy']:.1%}",
            f"{e['seconds']:.0f}",
        )
    stdout.print(table)
    stdout.print(
        "alone: run on every clean-correct example; cumulative: run only on the examples "
        "every attack above failed on, so the figure includes them (AutoAttack's practice)."
    )
    if any(e.get("skipped") for e in result["per_attack"].values()):
        stdout.print(
            "[yellow]black-box only: no torch twin, gradients are never taken from ONNX "
            "Runtime; the figure is an upper bound.[/]"
        )
    stdout.print(
        f"[bold]robust accuracy (worst case over the ensemble): {result['robust']:.1%}[/] "
        f"({result['robust_count']} of {n}); clean {result['clean']:.1%}; "
        f"{result['norm']} eps {result['eps']:g}; seed {result['seed']}; "
        f"{result['seconds']:.0f} s"
    )
    _print_checks(result)


def _print_checks(result: dict) -> None:
    from rich.table import Table

    if not result["sanity_checks"]:
        stdout.print("sanity checks: not run")
        return
    table = Table(title="sanity checks", title_justify="left")
    table.add_column("check")
    table.add_column("result")
    table.add_column("numbers")
    for c in result["checks"]:
        verdict = "skipped" if c["skipped"] else "passed" if c["passed"] else "[bold red]FAILED[/]"
        table.add_row(c["title"], verdict, c["detail"], style=None if c["passed"] else "red")
    stdout.print(table)
    failed = [c for c in result["checks"] if not c["passed"]]
    if failed:
        stdout.print(
            f"[bold white on red] {len(failed)} SANITY CHECK(S) FAILED: "
            f"{', '.join(c['name'] for c in failed)} [/] the robust accuracy above may "
            "overstate robustness (weak attacks or gradient masking)."
        )


def register(app) -> None:
    """Add the ``audit`` command to ``app``."""

    @app.command()
    @guarded
    def audit(
        model: Annotated[Path, typer.Argument(help="A run folder, a checkpoint (.pt) or .onnx.")],
        data: Annotated[str | None, Opt(help="Dataset (default: the run's, or fashion-mnist).")] = (
            None
        ),
        data_root: Annotated[Path | None, Opt(help="Folder with the dataset's files.")] = None,
        eps: Annotated[float | None, Opt(help="Radius in pixel space (default: run's, 0.1).")] = (
            None
        ),
        norm: Annotated[str | None, Opt(help="linf or l2 (default: the run's, or linf).")] = None,
        samples: Annotated[int, Opt(min=1, help="First N test examples audited.")] = 1000,
        attacks: Annotated[str, Opt(help="Comma-separated attacks.")] = ",".join(DEFAULT_ATTACKS),
        strength: Annotated[str, Opt(help=STRENGTH_HELP)] = "default",
        pgd_steps: Annotated[int, Opt(min=1)] = 20,
        pgd_restarts: Annotated[int | None, Opt(min=1, help="PGD/APGD restarts (1).")] = None,
        apgd_steps: Annotated[int | None, Opt(min=1, help="Default: --pgd-steps.")] = None,
        apgd_targets: Annotated[int | None, Opt(min=1, help="APGD-T targets (3).")] = None,
        square_queries: Annotated[int | None, Opt(min=1, help="Per example (300).")] = None,
        eps_sweep: Annotated[str | None, Opt(help="Extra eps values, e.g. 0.05,0.2.")] = None,
        sanity_checks: Annotated[bool, Opt(help="Run the sanity checks.")] = True,
        batch_size: Annotated[int, Opt(min=1)] = 500,
        seed: Annotated[int, Opt(min=0)] = 0,
        out: Annotated[Path | None, Opt(help="Write audit.json/.md and the plot here.")] = None,
        model_spec: Annotated[str | None, Opt(help="Spec of a plain state dict's model.")] = None,
        onnx: Annotated[bool, Opt(help="Also audit a run folder's model.int8.onnx.")] = True,
        strict: Annotated[bool, Opt(help="Exit with 1 when a sanity check fails.")] = False,
        quiet: Annotated[bool, Opt(help="No progress messages.")] = False,
    ) -> None:
        """Audit a model: attack ensemble, per-example worst case, and sanity checks."""
        from robust_compress.audit.options import AuditConfig
        from robust_compress.audit.runner import run_audit
        from robust_compress.engine.loading import resolve_subject

        setup_logging(quiet=True)
        sweep = _floats(eps_sweep, "--eps-sweep")
        plan = resolve_subject(model, data, data_root, model_spec, onnx)
        for note in plan.notes:
            console.print(f"note: {note}", style="yellow", markup=False)
        out_root = out if out is not None else plan.out_dir
        config = AuditConfig(
            eps=eps if eps is not None else plan.eps or 0.1,
            norm=norm or plan.norm or "linf",
            attacks=_names(attacks),
            strength=strength,
            samples=samples,
            pgd_steps=pgd_steps,
            pgd_restarts=pgd_restarts,
            apgd_steps=apgd_steps,
            apgd_targets=apgd_targets,
            square_queries=square_queries,
            eps_sweep=sweep,
            sanity_checks=sanity_checks,
            batch_size=batch_size,
            seed=seed,
        )
        failed = 0
        for subject in plan.subjects:
            folder = None
            if out_root is not None:
                folder = out_root / subject.label if len(plan.subjects) > 1 else out_root
            status = console.status(f"auditing {subject.label}") if not quiet else None
            with status or contextlib.nullcontext():
                result = run_audit(
                    subject.model,
                    plan.data,
                    config,
                    onnx_path=subject.onnx_path,
                    out_dir=folder,
                    progress=status.update if status else None,
                )
            print_result(subject.label, result)
            failed += sum(not c["passed"] for c in result["checks"])
            if folder is not None:
                _record(plan.run_folder, folder)
                stdout.print(f"written: {folder}/audit.json, audit.md, accuracy_vs_eps.png")
        if strict and failed:
            sys.exit(1)


def _record(run_folder, folder: Path) -> None:
    """Add the files written into a run folder to its checksum manifest."""
    if run_folder is None:
        return
    try:
        folder.resolve().relative_to(run_folder.path)
    except ValueError:
        return
    for path in sorted(folder.iterdir()):
        if path.is_file():
            run_folder.record(path)
