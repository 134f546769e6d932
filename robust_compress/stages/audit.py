"""The ``audit`` stage: the adversarial audit of the final model (and of the dense one)."""

from __future__ import annotations

import logging

from robust_compress.audit.options import AuditConfig
from robust_compress.stages.contract import StageResult

log = logging.getLogger(__name__)


STAGE_ONLY = {"onnx", "dense"}  # the stage's own fields; the rest are the audit's


def audit_options(session, stage) -> AuditConfig:
    """The :class:`AuditConfig` of the stage block, under the recipe's threat and seed."""
    options = stage.model_dump(exclude=STAGE_ONLY)
    threat = session.recipe.threat
    return AuditConfig(**options, eps=threat.eps, norm=threat.norm, seed=session.recipe.seed)


def run(session, stage, label: str) -> StageResult:
    """Audit the final model, and the dense snapshot when the run compressed the model."""
    from robust_compress.audit.runner import run_audit

    options = audit_options(session, stage)
    results = {}
    out = session.out.path / "audit" if session.out is not None else None
    session.hooks.on_stage_start(label, 0, 0)
    int8 = _integer_file(session)
    # The file's agreement with its twin is checked once: by the ONNX audit when there is one.
    deployed = None if stage.onnx else int8
    results["final"] = run_audit(
        session.model,
        session.test_data,
        options,
        out_dir=out and out / "final",
        deployed_file=deployed,
    )
    if stage.onnx and int8 is not None:
        results["int8_onnx"] = run_audit(
            session.model, session.test_data, options, onnx_path=int8, out_dir=out / "int8-onnx"
        )
    elif stage.onnx:
        session.hooks.on_message(
            f"warning: stage {label}: onnx: true but no model.int8.onnx was exported before "
            "this stage; the ONNX audit was skipped."
        )
    if session.dense_state is not None and stage.dense:
        results["dense"] = run_audit(
            session.dense_model(), session.test_data, options, out_dir=out and out / "dense"
        )
    _say_twin_agreement(session, results)
    for name, result in results.items():
        for check in result.get("checks", []):
            if not check.get("passed", True):
                session.hooks.on_message(
                    f"AUDIT CHECK FAILED ({name}): {check['name']}: {check.get('detail', '')}"
                )
    if session.out is not None:
        for path in sorted(out.rglob("*")) if out.exists() else []:
            if path.is_file():
                session.out.record(path)
    return StageResult("audit", {**results, "markdown": _markdown(results)})


def _integer_file(session):
    """The run's exported integer ONNX file, or None (no run folder, quantize or export)."""
    if session.out is None or session.quant_config is None:
        return None
    path = session.out.path / "model.int8.onnx"
    return path if path.is_file() else None


def _say_twin_agreement(session, results: dict) -> None:
    checks = [c for result in results.values() for c in result.get("checks", [])]
    for check in checks:
        if check["name"] == "twin_agreement" and check["passed"]:
            session.hooks.on_message(
                f"model.int8.onnx agrees with its fake-quant twin on "
                f"{100 * check['agreement']:.1f}% of {check['samples']} audited images"
            )


def _markdown(results: dict) -> str:
    parts = ["## Adversarial audit"]
    for name in ("final", "int8_onnx", "dense"):
        if name in results and results[name].get("markdown"):
            parts += ["", f"### {name} model", "", results[name]["markdown"]]
    return "\n".join(parts)
