"""The ``sensitivity`` and ``search`` commands: robust sensitivity of a model, a budgeted search.

Both take a model as a run folder (its recipe gives the spec, data and threat) or a checkpoint
(``train --save``, a run's ``checkpoints/last.pt`` of an unpruned model, or a state dict with
``--model-spec``), and measure on images held out from the training data (``--holdout``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer
import yaml

from robust_compress.cli.common import guarded, setup_logging
from robust_compress.cli.common import out as stdout
from robust_compress.errors import UserError
from robust_compress.search.report import search_sections

Opt = typer.Option
commands = typer.Typer()
Model = Annotated[Path, typer.Argument(help="A run folder or a checkpoint (.pt).")]
Data = Annotated[str | None, Opt(help="Dataset (default: the run's, else fashion-mnist).")]
DataRoot = Annotated[Path | None, Opt(help="Folder with the dataset's files.")]
Spec = Annotated[str | None, Opt(help="Model spec of a plain state dict.")]
Holdout = Annotated[int, Opt(min=1, help="Training images held out as the validation split.")]
Eps = Annotated[float | None, Opt(min=0.0, help="L-inf eps (default: the run's, else 0.1).")]


def _base(model: Path, data: str | None, root: Path | None, spec: str | None, eps, holdout):
    """The recipe fields ``model``, ``data`` and ``threat`` for MODEL, as plain data."""
    if not model.exists():
        raise UserError(f"MODEL {model} does not exist; give a run folder or a checkpoint (.pt).")
    if model.is_dir():
        from robust_compress.recipe.loader import load_run_recipe

        resolved = model / "recipe.resolved.yaml"
        if not resolved.is_file():
            raise UserError(f"{model} is not a run folder (no recipe.resolved.yaml).")
        run = load_run_recipe(resolved).model_dump(mode="json", serialize_as_any=True)
        weights = model / "checkpoints" / "last.pt"
        base = {
            "model": {**run["model"], "weights": str(weights)},
            "data": run["data"],
            "threat": run["threat"],
        }
    else:
        base = {
            "model": {"spec": spec or _spec_of(model), "weights": str(model)},
            "data": {"name": data or "fashion-mnist"},
            "threat": {"norm": "linf", "eps": 0.1},
        }
    if data:
        base["data"] = {"name": data}
    if root:
        base["data"]["root"] = str(root)
    base["data"]["holdout"] = holdout
    if eps is not None:
        base["threat"]["eps"] = eps
    return base


def _spec_of(path: Path) -> str:
    from robust_compress.engine.checkpoint import load_checkpoint
    from robust_compress.errors import CheckpointError

    try:
        return load_checkpoint(path)["model_spec"]
    except CheckpointError as exc:
        raise UserError(f"{exc} For a plain state dict pass --model-spec SPEC.") from None


def _numbers(text: str, kind: type, option: str) -> list:
    try:
        return [kind(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UserError(f"{option} takes comma-separated numbers; got {text!r}.") from None


def _write_recipe(recipe: dict, folder: Path) -> Path:
    path = folder / f"{recipe['name']}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@commands.command()
@guarded
def sensitivity(
    model: Model,
    out: Annotated[Path | None, Opt(help="Run folder (default runs/sensitivity-NAME).")] = None,
    data: Data = None,
    data_root: DataRoot = None,
    model_spec: Spec = None,
    holdout: Holdout = 1000,
    eps: Eps = None,
    ratios: Annotated[str, Opt(help="Pruning ratios, comma-separated.")] = "0.25,0.5,0.75,0.9",
    bits: Annotated[str, Opt(help="Weight bit widths, comma-separated.")] = "8,4,2",
    val_samples: Annotated[int, Opt(min=1, help="Validation images attacked.")] = 1000,
    val_steps: Annotated[int, Opt(min=1, help="Steps of the validation PGD.")] = 10,
    bn_batches: Annotated[
        int, Opt(min=0, help="Training batches that re-estimate BatchNorm after pruning.")
    ] = 10,
    force: Annotated[bool, Opt(help="Start over, deleting a previous run in --out.")] = False,
    quiet: bool = False,
) -> None:
    """Robust sensitivity: the robust-accuracy drop when only one layer is pruned or quantized."""
    from robust_compress.cli.run import run_recipe

    setup_logging(quiet)
    stage = {
        "ratios": _numbers(ratios, float, "--ratios"),
        "bits": _numbers(bits, int, "--bits"),
        "val_samples": val_samples,
        "val_attack": {"attack": "pgd", "steps": val_steps},
        "bn_batches": bn_batches,
    }
    if model.is_dir():
        report = {"sensitivity": _run_folder_sensitivity(model, out, stage, holdout, force)}
    else:
        recipe = {
            "name": f"sensitivity-{model.stem}",
            **_base(model, data, data_root, model_spec, eps, holdout),
            "stages": [{"sensitivity": stage}],
        }
        out = out or Path("runs") / recipe["name"]
        with tempfile.TemporaryDirectory() as folder:
            path = _write_recipe(recipe, Path(folder))
            report = run_recipe(path, out, [], False, force, quiet)
    stdout.print("\n".join(search_sections(report)), markup=False)


def _run_folder_sensitivity(run: Path, out: Path | None, stage: dict, holdout: int, force):
    """Sensitivity of a run's latest model (pruned or quantized too) into ``out``."""
    import logging

    from robust_compress.engine import state as session_state
    from robust_compress.engine.runfolder import RunFolder
    from robust_compress.engine.session import Session
    from robust_compress.recipe.loader import load_run_recipe
    from robust_compress.search.configs import SensitivityStage
    from robust_compress.stages.sensitivity import run as run_sensitivity

    recipe = load_run_recipe(run / "recipe.resolved.yaml")
    if recipe.data.holdout != holdout:
        logging.getLogger(__name__).warning(
            "the run held out %d training images, not %d: it may have trained on validation "
            "images, so the figures can be optimistic",
            recipe.data.holdout,
            holdout,
        )
        data = recipe.data.model_copy(update={"holdout": holdout})
        recipe = recipe.model_copy(update={"data": data})
    session = Session(recipe, RunFolder(run, resume=True))
    session.setup()
    if not session_state.restore_latest(session):
        raise UserError(f"run folder {run} has no checkpoint yet.")
    session.out = RunFolder(out or run / "sensitivity", force=force)
    config = SensitivityStage.model_validate(stage)
    config.val_attack = config.val_attack.resolved(recipe.threat.eps)
    result = run_sensitivity(session, config, "sensitivity").data
    session.out.write_text("sensitivity.json", json.dumps(result, indent=1, default=float))
    session.out.write_text("report.md", "\n".join(search_sections({"sensitivity": result})))
    log_path = session.out.path / "report.md"
    stdout.print(f"report: {log_path}", markup=False)
    return result


@commands.command()
@guarded
def search(
    model: Model,
    max_robust_drop: Annotated[float, Opt(min=0.0, help="Budget in points of robust accuracy.")],
    objective: Annotated[str, Opt(help="macs, params, onnx_bytes or latency.")] = "macs",
    target: Annotated[float, Opt(help="Objective fraction the last step aims at.")] = 0.1,
    steps: Annotated[int, Opt(min=1, help="Pruning steps.")] = 3,
    finetune_epochs: Annotated[int, Opt(min=0, help="Fine-tuning epochs per step.")] = 1,
    qat_epochs: Annotated[int, Opt(min=0, help="QAT epochs after the search.")] = 1,
    audit_samples: Annotated[int, Opt(min=1, help="Test images the final audit attacks.")] = 1000,
    out: Annotated[Path | None, Opt(help="Run folder (default runs/search-NAME).")] = None,
    data: Data = None,
    data_root: DataRoot = None,
    model_spec: Spec = None,
    holdout: Holdout = 1000,
    eps: Eps = None,
    resume: Annotated[bool, Opt(help="Continue the search in --out.")] = False,
    force: Annotated[bool, Opt(help="Start over, deleting a previous run in --out.")] = False,
    quiet: bool = False,
) -> None:
    """Search for the smallest model within a robustness budget, then quantize, export, audit."""
    from robust_compress.cli.run import run_recipe
    from robust_compress.report.run_report import summary_table

    setup_logging(quiet)
    recipe = {
        "name": f"search-{model.stem}",
        **_base(model, data, data_root, model_spec, eps, holdout),
        "stages": [
            {
                "search": {
                    "max_robust_drop": max_robust_drop,
                    "objective": objective,
                    "target": target,
                    "steps": steps,
                    "finetune_epochs": finetune_epochs,
                }
            },
            {"quantize": {"qat_epochs": qat_epochs}},
            {"export": {}},
            {"audit": {"samples": audit_samples}},
        ],
    }
    out = out or Path("runs") / recipe["name"]
    with tempfile.TemporaryDirectory() as folder:
        report = run_recipe(_write_recipe(recipe, Path(folder)), out, [], resume, force, quiet)
    stdout.print(summary_table(report), markup=False)
    stdout.print(report["search"]["stopped"] + ".", markup=False)
    stdout.print(f"report: {out / 'report.md'}; figures: {out / 'report.json'}")


def register(app: typer.Typer) -> None:
    """Add the ``sensitivity`` and ``search`` commands to ``app``."""
    app.registered_commands.extend(commands.registered_commands)
