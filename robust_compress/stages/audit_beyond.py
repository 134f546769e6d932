"""The audit stage's optional sections beyond the threat ball: corruptions and smoothing.

Switched on by the stage's ``corruptions`` and ``smoothing`` blocks (both null by default).
They need forward passes only, so they run on what ships: the deployed ``model.int8.onnx``
through ONNX Runtime when the run exported it (and the stage's ``onnx`` is on), else the final
torch model; and on the dense snapshot when the stage audits it (``dense``). Their figures go
to the audit section of report.json under ``corruptions`` and ``smoothing`` (by model key:
``int8_onnx`` or ``final``, and ``dense``) with a Markdown section each in the run report; with
both models, ``corruptions_paired`` and ``smoothing_paired`` hold the paired tests (per image)
of the dense model against the deployed one (:mod:`robust_compress.audit.beyond_compare`).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from robust_compress.stages.contract import StageResult

log = logging.getLogger(__name__)

INT8_ONNX = "model.int8.onnx"
TITLES = {
    "int8_onnx": "final, as deployed (model.int8.onnx, ONNX Runtime)",
    "final": "final (torch)",
    "dense": "dense (torch)",
}


def beyond_the_ball(session, stage, result: StageResult) -> StageResult:
    """``result`` (the adversarial audit's) with the corruption and smoothing sections added."""
    if stage.corruptions is None and stage.smoothing is None:
        return result
    from robust_compress.audit import beyond_compare as bc
    from robust_compress.audit.corruption_audit import corruption_markdown, evaluate_corruptions
    from robust_compress.audit.predict import as_predictor
    from robust_compress.audit.smoothing import certify, smoothing_markdown

    data = dict(result.data)
    markdown = [data.get("markdown", "")]
    runs = (
        ("corruptions", stage.corruptions, evaluate_corruptions, corruption_markdown),
        ("smoothing", stage.smoothing, certify, smoothing_markdown),
    )
    pairs = {
        "corruptions": (bc.paired_corruptions, bc.corruption_pairs_markdown),
        "smoothing": (bc.paired_certificates, bc.certificate_pairs_markdown),
    }
    subjects = targets(session, stage)
    for section, config, evaluate, render in runs:
        if config is None:
            continue
        found = {}
        for key, subject in subjects:
            session.hooks.on_message(f"audit: {section} of the {TITLES[key]} model")
            with as_predictor(subject) as predict:
                found[key] = evaluate(predict, session.test_data, config)
        data[section] = found
        markdown.append(render(found, TITLES))
        other = next((k for k in found if k != "dense"), None)
        pair, table = pairs[section]
        paired = pair(found["dense"], found[other]) if "dense" in found and other else None
        if paired is not None:  # None: no dense run, or the two runs differ
            data[f"{section}_paired"] = paired
            markdown.append("\n".join(table(paired, TITLES[other])))
    data["markdown"] = "\n\n".join(m for m in markdown if m)
    return replace(result, data=data)


def targets(session, stage) -> list[tuple[str, object]]:
    """``(key, model or ONNX file)`` of what the sections run on: the dense model, what ships."""
    found: list[tuple[str, object]] = []
    if session.dense_state is not None and stage.dense:
        found.append(("dense", session.dense_model()))
    file = deployed_file(session)
    if file is not None and stage.onnx:
        found.append(("int8_onnx", file))
    else:
        found.append(("final", session.model))
    return found


def deployed_file(session) -> Path | None:
    """The run's exported integer ONNX file, or None (no run folder, quantize or export)."""
    if session.out is None or session.quant_config is None:
        return None
    path = session.out.path / INT8_ONNX
    return path if path.is_file() else None
