"""The ``audit`` stage: the adversarial audit of what ships, of its twin and of the dense model.

When the run exported an integer ONNX file, that file is audited as deployed (``onnx: true``,
the default) and its figure is the run's headline, beside the fake-quant twin's. The dense
snapshot and the headline model are compared image by image (``audit/compression-changes.csv``
and an exact McNemar test).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from robust_compress.audit.compare import headline_key
from robust_compress.audit.options import AuditConfig
from robust_compress.stages.audit_beyond import beyond_the_ball, deployed_file
from robust_compress.stages.contract import StageResult

log = logging.getLogger(__name__)


STAGE_ONLY = {"onnx", "dense", "corruptions", "smoothing"}  # the rest are the attack audit's


def audit_options(session, stage) -> AuditConfig:
    """The :class:`AuditConfig` of the stage block, under the recipe's threat and seed."""
    options = stage.model_dump(exclude=STAGE_ONLY)
    threat = session.recipe.threat
    return AuditConfig(**options, eps=threat.eps, norm=threat.norm, seed=session.recipe.seed)


def run(session, stage, label: str) -> StageResult:
    """Audit the final model, the deployed integer file and the dense snapshot; pair them."""
    from robust_compress.audit.runner import run_audit

    options = audit_options(session, stage)
    results = {}
    out = session.out.path / "audit" if session.out is not None else None
    session.hooks.on_stage_start(label, 0, 0)
    int8 = deployed_file(session)
    file = int8 if stage.onnx else None
    # The file's agreement with its twin is checked once: by the file's audit when there is one.
    results["final"] = run_audit(
        session.model,
        session.test_data,
        options,
        out_dir=out and out / "final",
        deployed_file=None if file else int8,
    )
    if file is not None:
        results["int8_onnx"] = run_audit(
            session.model,
            session.test_data,
            file_options(options),
            onnx_path=file,
            out_dir=out / "int8-onnx",
        )
    elif stage.onnx and "onnx" in stage.model_fields_set:
        session.hooks.on_message(
            f"warning: stage {label}: onnx: true but no model.int8.onnx was exported before "
            "this stage; the audit of the deployed file was skipped."
        )
    if session.dense_state is not None and stage.dense:
        results["dense"] = run_audit(
            session.dense_model(), session.test_data, options, out_dir=out and out / "dense"
        )
    _say_twin_agreement(session, results)
    _say_failed_checks(session, results)
    _compare(session, results, out)
    if session.out is not None:
        for path in sorted(out.rglob("*")) if out.exists() else []:
            if path.is_file():
                session.out.record(path)
    return beyond_the_ball(  # corruptions and smoothing, when the stage asks for them
        session, stage, StageResult("audit", {**results, "markdown": _markdown(results)})
    )


def file_options(options: AuditConfig) -> AuditConfig:
    """The deployed file's audit: the same ensemble, without the eps sweep and sanity checks.

    Those read the gradients of the torch twin, which the twin's own audit checks already;
    the file's audit adds what only the file can tell (transfer, Square on the ONNX Runtime
    session, agreement with the twin).
    """
    return replace(options, sanity_checks=False, eps_sweep=())


def _compare(session, results: dict, out) -> None:
    """Pair the dense audit with the headline one; write the changed images' CSV."""
    from robust_compress.audit.compare import changed_images, changes_csv, compare_audits
    from robust_compress.files import atomic_write_bytes

    key = headline_key(results)
    if "dense" not in results or key is None:
        return
    results["comparison"] = {"reference": "dense", "other": key}
    results["comparison"].update(compare_audits(results["dense"], results[key]))
    if out is not None:
        n = results["dense"]["samples"]
        labels = session.test_data.head(n).y.tolist()
        rows = changed_images(results["dense"], results[key], labels)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "compression-changes.csv", changes_csv(rows).encode())


def _say_failed_checks(session, results: dict) -> None:
    for name, result in results.items():
        for check in result.get("checks", []):
            if not check.get("passed", True):
                session.hooks.on_message(
                    f"AUDIT CHECK FAILED ({name}): {check['name']}: {check.get('detail', '')}"
                )


def _say_twin_agreement(session, results: dict) -> None:
    checks = [c for result in results.values() for c in result.get("checks", [])]
    for check in checks:
        if check["name"] == "twin_agreement" and check["passed"]:
            session.hooks.on_message(
                f"model.int8.onnx agrees with its fake-quant twin on "
                f"{100 * check['agreement']:.1f}% of {check['samples']} audited images"
            )


def _markdown(results: dict) -> str:
    from robust_compress.audit.compare import comparison_markdown

    parts = ["## Adversarial audit"]
    key = headline_key(results)
    if key == "int8_onnx":
        parts += ["", *deployed_table(results)]
    if "comparison" in results:
        name = TITLES[key]
        parts += [
            "",
            f"### Dense against {name}",
            "",
            *comparison_markdown(results["comparison"], name),
        ]
    for name in ("int8_onnx", "final", "dense"):
        if name in results and results[name].get("markdown"):
            title = TITLES[name][0].upper() + TITLES[name][1:]
            parts += ["", f"### {title}", "", results[name]["markdown"]]
    return "\n".join(parts)


TITLES = {
    "int8_onnx": "the deployed file (model.int8.onnx)",
    "final": "the final torch model",
    "dense": "the dense model",
}


def deployed_table(results: dict) -> list[str]:
    """The deployed file beside its fake-quant twin: robust and clean figures, agreement."""
    from robust_compress.audit.report import ci_text, pct

    file, twin = results["int8_onnx"], results["final"]
    rows = [
        "The headline is the deployed file's figure: the file as ONNX Runtime runs it, attacked "
        "by gradient attacks crafted on its fake-quant twin (transfer) and by Square on the "
        "ONNX Runtime session itself, worst case per image.",
        "",
        "| model | robust (audit) | 95% interval | clean | attacked as |",
        "|---|---:|---|---:|---|",
    ]
    for title, r, how in (
        ("model.int8.onnx (deployed)", file, "transfer from the twin + Square on the file"),
        ("fake-quant twin (torch)", twin, "white-box"),
    ):
        rows.append(
            f"| {title} | {pct(r['robust'])} | {ci_text(r.get('robust_ci'))} | "
            f"{pct(r['clean'])} | {how} |"
        )
    agreement = next((c for c in file.get("checks", []) if c["name"] == "twin_agreement"), None)
    if agreement is not None:
        state = "passed" if agreement["passed"] else "**FAILED**"
        rows += ["", f"Twin agreement check: {state}: {agreement['detail']}"]
    return rows
