"""What the ``run``, ``validate`` and ``list`` commands do, apart from parsing options."""

from __future__ import annotations

import logging
from pathlib import Path

from robust_compress.cli.common import Bars, setup_logging
from robust_compress.cli.common import out as stdout
from robust_compress.errors import UserError

log = logging.getLogger(__name__)
RESOLVED = "recipe.resolved.yaml"


def run_recipe(
    path: Path,
    out: Path | None,
    overrides: list[str],
    resume: bool,
    force: bool,
    quiet: bool,
    device: str | None = None,
) -> dict:
    """Validate ``path``, prepare the run folder, run every stage and return the report.

    Under torchrun (``WORLD_SIZE`` > 1) every rank runs every stage with
    DistributedDataParallel; rank 0 alone claims the run folder and writes files.
    """
    from robust_compress.training import distributed

    if resume and force:
        raise UserError("--resume and --force contradict each other; pass one of them.")
    distributed.init_from_env()
    try:
        return _run_recipe(path, out, overrides, (resume, force, quiet), device)
    finally:
        distributed.shutdown()


def _run_recipe(
    path: Path, out: Path | None, overrides: list[str], flags: tuple, device: str | None
) -> dict:
    from robust_compress.cli.hooks import ProgressHooks
    from robust_compress.engine.runfolder import RunFolder
    from robust_compress.engine.session import Session
    from robust_compress.recipe.checks import check_order
    from robust_compress.recipe.loader import dump_resolved, load_recipe, parse_recipe
    from robust_compress.training import distributed

    resume, force, quiet = flags
    recipe = load_recipe(path, overrides)
    errors, warnings = check_order(recipe)
    if errors:
        raise UserError("; ".join(errors))
    main = distributed.is_main()
    folder_path = out or Path("runs") / recipe.name
    folder = None
    if main:
        folder = RunFolder(folder_path, resume=resume, force=force)
        setup_logging(quiet, str(folder.path / "run.log"))
        log.info("run folder %s", folder.path)  # first: each invocation's log starts with it
        for w in warnings:
            log.warning("%s", w)
        resolved = folder.path / RESOLVED
        if resume and resolved.exists():
            _check_same_recipe(resolved, dump_resolved(recipe), parse_recipe)
        folder.write_text(RESOLVED, dump_resolved(recipe))
    else:  # other ranks: warnings and errors only; rank 0 prints the progress and summary
        setup_logging(True)
        stdout.quiet = True
    distributed.barrier()  # the folder is claimed (or the run stopped) before anyone goes on
    with Bars(quiet or not main) as bars:
        hooks = ProgressHooks(bars) if main else None
        session = Session(recipe, folder, hooks=hooks, device=device)
        session.setup()
        if resume:
            _restore(session, folder_path)
        return session.run()


def _restore(session, folder_path: Path) -> None:
    """Restore the last checkpoint on every rank (rank 0's folder, read by all)."""
    from robust_compress.engine import state as session_state
    from robust_compress.training import distributed

    if session.out is None:  # another rank: read rank 0's files, write nothing
        from robust_compress.engine.runfolder import ReadOnlyFolder

        session.out = ReadOnlyFolder(folder_path)
        try:
            session_state.restore_latest(session)
        finally:
            session.out = None
    else:
        session_state.restore_latest(session)
    distributed.barrier()


def _check_same_recipe(resolved: Path, now: str, parse_recipe) -> None:
    from robust_compress.recipe.loader import load_run_recipe

    before = load_run_recipe(resolved)
    now_recipe = parse_recipe(now, source="<recipe>")
    same_device = now_recipe.model_copy(update={"device": before.device})  # may move on resume
    if before != same_device:
        raise UserError(
            f"the recipe differs from the one this run started with ({resolved}); resume with "
            "the same recipe and --set values, or start over with --force."
        )


def validate_recipe(path: Path, overrides: list[str]) -> list[str]:
    """Validate a recipe and check it against its model; return lines to print."""
    from robust_compress.models.specs import build_model
    from robust_compress.recipe.checks import check_against_model, check_order
    from robust_compress.recipe.loader import load_recipe

    recipe = load_recipe(path, overrides)
    errors, warnings = check_order(recipe)
    channels = 3 if recipe.model.spec.startswith("torchvision:") else 1
    model = build_model(recipe.model.spec, 10, channels)
    more_errors, more_warnings = check_against_model(recipe, model)
    errors, warnings = errors + more_errors, warnings + more_warnings
    if errors:
        raise UserError(f"{path}: " + "; ".join(errors))
    lines = [f"{path}: warning: {w}" for w in warnings]
    kinds = ", ".join(s.kind for s in recipe.stages)
    return [*lines, f"{path}: ok ({recipe.name}: {len(recipe.stages)} stages: {kinds})"]


def export_checkpoint(checkpoint: Path, out: Path, force: bool) -> float:
    """Export a ``train --save`` checkpoint to ONNX; return the parity max abs difference."""
    import torch

    from robust_compress.adapters.onnxruntime import runtime as ort_runtime
    from robust_compress.engine.checkpoint import load_model

    if out.exists() and not force:
        raise UserError(f"{out} exists; pass --force to overwrite it or choose another --out.")
    if out.suffix != ".onnx":
        raise UserError(f"--out {out} should end in .onnx.")
    model, ckpt = load_model(checkpoint)
    shape = ckpt.get("input_shape") or [ckpt["in_channels"], 28, 28]
    example = torch.rand(8, *shape, generator=torch.Generator().manual_seed(0))
    ort_runtime.export_onnx(model, out, example[:1])
    return ort_runtime.parity_max_abs(model, out, example)
