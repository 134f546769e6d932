"""What ``robust-compress audit MODEL`` audits: a run folder, a checkpoint, a state dict or ONNX.

:func:`resolve_subject` turns the command's MODEL argument into the models to audit, the data
to audit them on and the default threat model and output folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from robust_compress.data.datasets import TensorData, load_dataset
from robust_compress.errors import CheckpointError, UserError

log = logging.getLogger(__name__)

RESOLVED = "recipe.resolved.yaml"
INT8_ONNX = "model.int8.onnx"


@dataclass
class Subject:
    """One thing to audit (a torch model, or an ONNX file with or without its torch twin)."""

    label: str
    model: nn.Module | None
    onnx_path: Path | None = None


@dataclass
class AuditPlan:
    """Everything the audit command needs besides its options."""

    subjects: list[Subject]
    data: TensorData
    eps: float | None = None
    norm: str | None = None
    out_dir: Path | None = None
    run_folder: object | None = None
    notes: list[str] = field(default_factory=list)


def resolve_subject(
    model_arg: Path,
    data: str | None,
    data_root: Path | None,
    model_spec: str | None,
    onnx: bool = True,
) -> AuditPlan:
    """Resolve MODEL: a run folder, a ``.onnx`` file, or a checkpoint / state dict file.

    Raises:
        UserError: MODEL is missing or of no known kind, or a state dict without a spec.
    """
    path = Path(model_arg)
    if not path.exists():
        raise UserError(
            f"MODEL {path} does not exist; give a run folder, a checkpoint (.pt) or an ONNX file."
        )
    if path.is_dir():
        return _run_folder(path, data, data_root, onnx)
    if model_spec is not None and path.suffix == ".onnx":
        raise UserError("--model-spec applies to a state dict file, not to an ONNX file.")
    test = load_dataset(data or "fashion-mnist", "test", root=data_root)
    if path.suffix == ".onnx":
        from robust_compress.adapters.onnxruntime.runtime import check_onnx_input

        check_onnx_input(path, test.input_shape, test.num_classes)
        return AuditPlan([Subject("onnx", None, path)], test)
    model = _load_torch(path, model_spec, test)
    return AuditPlan([Subject("model", model)], test)


def _load_torch(path: Path, model_spec: str | None, test: TensorData) -> nn.Module:
    from robust_compress.engine.checkpoint import load_model
    from robust_compress.models.specs import build_model, load_weights

    if model_spec is not None:
        channels, height, width = test.input_shape
        model = build_model(model_spec, test.num_classes, channels, input_size=(height, width))
        return load_weights(model, path).eval()
    try:
        model, _ = load_model(path)
    except CheckpointError as exc:
        raise CheckpointError(
            f"{exc} For a plain state dict pass --model-spec SPEC (e.g. builtin:cnn_small)."
        ) from None
    return model


def _run_folder(path: Path, data: str | None, data_root: Path | None, onnx: bool) -> AuditPlan:
    from robust_compress.engine import state as session_state
    from robust_compress.engine.runfolder import RunFolder
    from robust_compress.engine.session import Session
    from robust_compress.recipe.loader import load_run_recipe

    if not (path / RESOLVED).is_file():
        raise UserError(
            f"{path} is a folder but not a robust-compress run folder (no {RESOLVED}); give a "
            "run folder made by `robust-compress run`, a checkpoint file or an ONNX file."
        )
    recipe = load_run_recipe(path / RESOLVED)
    session = Session(recipe, RunFolder(path, resume=True))
    session.setup()
    if not session_state.restore_latest(session):
        raise UserError(f"run folder {path} has no checkpoint yet ({session_state.LAST}).")
    notes = []
    if session.stage_index < len(recipe.stages):
        notes.append(
            f"the run stopped after {session.stage_index} of {len(recipe.stages)} stages; "
            "auditing its last checkpoint"
        )
    test = session.test_data
    if data is not None:
        test = load_dataset(data, "test", root=data_root)
    subjects = [Subject("final", session.model.eval())]
    int8 = path / INT8_ONNX
    if onnx and int8.is_file():
        twin = session.model if session.quant_config is not None else None
        if twin is None:
            notes.append(f"{INT8_ONNX} has no fake-quant twin in the checkpoint: black-box only")
        subjects.append(Subject("int8-onnx", twin, int8))
    return AuditPlan(
        subjects,
        test,
        eps=recipe.threat.eps,
        norm=recipe.threat.norm,
        out_dir=session.out.path / "audit" / "cli",
        run_folder=session.out,
        notes=notes,
    )
