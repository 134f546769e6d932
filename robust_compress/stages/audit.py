"""The ``audit`` stage: the adversarial audit of the final model (and of the dense one)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def audit_options(session, stage) -> dict:
    """Keyword arguments of :func:`robust_compress.audit.runner.run_audit` from the stage block."""
    return {
        "eps": session.recipe.threat.eps,
        "norm": session.recipe.threat.norm,
        "attacks": list(stage.attacks),
        "samples": stage.samples,
        "pgd_steps": stage.pgd_steps,
        "pgd_restarts": stage.pgd_restarts,
        "apgd_steps": stage.apgd_steps,
        "square_queries": stage.square_queries,
        "eps_sweep": list(stage.eps_sweep),
        "sanity_checks": stage.sanity_checks,
        "batch_size": stage.batch_size,
        "seed": session.recipe.seed,
    }


def run(session, stage, label: str) -> None:
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
        out_dir=out and out / "final",
        deployed_file=deployed,
        **options,
    )
    if stage.onnx and int8 is not None:
        results["int8_onnx"] = run_audit(
            session.model, session.test_data, onnx_path=int8, out_dir=out / "int8-onnx", **options
        )
    elif stage.onnx:
        session.hooks.on_message(
            f"warning: stage {label}: onnx: true but no model.int8.onnx was exported before "
            "this stage; the ONNX audit was skipped."
        )
    if session.dense_state is not None and stage.dense:
        results["dense"] = run_audit(
            session.dense_model(), session.test_data, out_dir=out and out / "dense", **options
        )
    _say_twin_agreement(session, results)
    for name, result in results.items():
        for check in result.get("checks", []):
            if not check.get("passed", True):
                session.hooks.on_message(
                    f"AUDIT CHECK FAILED ({name}): {check['name']}: {check.get('detail', '')}"
                )
    session.extra["audit"] = {**results, "markdown": _markdown(results)}
    if session.out is not None:
        for path in sorted(out.rglob("*")) if out.exists() else []:
            if path.is_file():
                session.out.record(path)


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
