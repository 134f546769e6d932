"""One architecture of the zoo: run its recipe through the engine and read the figures back.

:func:`run_recipe` never raises: it returns ``status`` ``passed``, ``error`` (a robust-compress
error: a clear message, the way a user would see it) or ``traceback`` (any other exception: a
bug of ours or of a library; the traceback goes to stderr, which the zoo keeps in ``zoo.log``).
"""

from __future__ import annotations

import json
import time
import traceback
from collections import Counter
from pathlib import Path

from robust_compress.engine.hooks import Hooks
from robust_compress.errors import RobustCompressError, first_line

PROGRESS = "zoo.progress"
RUN = "run"  # the run folder inside the architecture's folder
INTEGER_OPS = {
    "QGemm",
    "MatMulInteger",
    "MatMulIntegerToFloat",
    "ConvInteger",
    "DynamicQuantizeMatMul",
}
FLOAT_COMPUTE = {
    "Conv",
    "FusedConv",
    "NhwcFusedConv",
    "ConvTranspose",
    "Gemm",
    "FusedGemm",
    "MatMul",
    "FusedMatMul",
}
QDQ = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


class _Progress(Hooks):
    """Appends each finished stage's label to ``folder/zoo.progress``."""

    def __init__(self, folder: Path):
        self.path = folder / PROGRESS

    def mark(self, label: str) -> None:
        with open(self.path, "a") as f:
            f.write(label + "\n")

    def on_stage_end(self, stage: str, record: dict) -> None:  # noqa: D102
        self.mark(stage)


def stage_reached(folder: Path, stages: tuple[str, ...]) -> str:
    """The stage a run was in when it stopped: ``setup`` or the next one after the last done."""
    path = folder / PROGRESS
    done = path.read_text().split() if path.is_file() else []
    if not done:
        return "setup"
    finished = len(done) - 1  # the first line is "setup"
    return stages[finished] if finished < len(stages) else "report"


def run_recipe(text: str, folder: Path) -> dict:
    """Run a recipe (YAML text) into ``folder/run``; return the zoo's result dict."""
    from robust_compress.engine.session import Session
    from robust_compress.recipe import parse_recipe

    progress = _Progress(folder)
    start = time.perf_counter()
    stages: tuple[str, ...] = ()
    try:
        recipe = parse_recipe(text, f"zoo:{folder.name}")
        stages = tuple(s.kind for s in recipe.stages)
        session = Session(recipe, out=folder / RUN, hooks=[progress])
        session.setup()
        progress.mark("setup")
        session.run()
    except RobustCompressError as exc:
        return _failed("error", folder, stages, f"{type(exc).__name__}: {first_line(exc)}")
    except Exception as exc:  # noqa: BLE001 - the zoo records every failure
        traceback.print_exc()
        return _failed("traceback", folder, stages, f"{type(exc).__name__}: {first_line(exc)}")
    result = {"status": "passed", "stage": None, "reason": None}
    result.update(figures(folder / RUN))
    result.update(twin_logits(session, folder / RUN / "model.int8.onnx"))
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def _failed(status: str, folder: Path, stages: tuple[str, ...], reason: str) -> dict:
    return {"status": status, "stage": stage_reached(folder, stages), "reason": reason}


def figures(folder: Path) -> dict:
    """Sizes, ONNX op counts, twin agreement, accuracy and stage times of a finished run."""
    report = json.loads((folder / "report.json").read_text())
    models, onnx = report["models"], report.get("onnx", {})
    int8 = onnx.get("int8", {})
    audit = report.get("audit", {}).get("final", {})
    twin = next((c for c in audit.get("checks", []) if c["name"] == "twin_agreement"), {})
    return {
        "params": [models["dense"]["params"], models["final"]["params"]],
        "macs": [models["dense"]["macs"], models["final"]["macs"]],
        "onnx_bytes": [onnx.get("fp32", {}).get("bytes"), int8.get("bytes")],
        "ops": op_counts(folder / "model.int8.onnx"),
        "export_agreement": int8.get("top1_agreement"),
        "twin_agreement": twin.get("agreement"),
        "twin_samples": twin.get("samples"),
        "clean_trained": report["per_stage"][0]["clean"],
        "clean": report["metrics"]["final"]["clean"],
        "robust": report["metrics"]["final"]["robust"],
        "stage_seconds": {s["name"]: round(s["seconds"], 1) for s in report["stages"]},
    }


def op_counts(path: Path) -> dict:
    """Integer kernels, float compute ops and other ops of ONNX Runtime's optimized graph."""
    from robust_compress.adapters.onnxruntime.runtime import optimized_op_types

    ops: Counter = optimized_op_types(path)
    integer = {k: v for k, v in ops.items() if k in INTEGER_OPS or k.startswith("QLinear")}
    floats = {k: v for k, v in ops.items() if k in FLOAT_COMPUTE}
    qdq = {k: v for k, v in ops.items() if k in QDQ}
    other = {k: v for k, v in ops.items() if k not in {**integer, **floats, **qdq}}
    return {"integer": integer, "float_compute": floats, "qdq": qdq, "other": other}


def twin_logits(session, path: Path, samples: int = 128) -> dict:
    """The int8 file against its fake-quant twin on the first test images, logit by logit.

    Top-1 agreement alone says little about a barely trained model that predicts one class
    everywhere; the largest logit difference (relative to the twin's largest logit) and the
    number of classes the twin predicts say how much the agreement is worth.
    """
    import torch

    from robust_compress.adapters.onnxruntime.runtime import OrtPredictor

    x = session.test_data.head(samples).x
    model = session.model.eval()
    with torch.no_grad():
        twin = model(x.to(next(model.parameters()).device)).float().cpu()
    int8 = OrtPredictor(path)(x)
    scale = float(twin.abs().max().clamp_min(1e-12))
    return {
        "logit_gap": float((int8 - twin).abs().max()) / scale,
        "twin_classes": int(twin.argmax(1).unique().numel()),
        "twin_spread": float(twin.std(0).max()) / scale,  # 0: logits independent of the image
        "logit_samples": len(x),
    }
