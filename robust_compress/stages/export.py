"""The ``export`` stage: fp32 (pruned) and int8 ONNX files, parity and latency."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from robust_compress.errors import UserError
from robust_compress.stages.contract import StageResult

log = logging.getLogger(__name__)
PARITY_SAMPLES = 512


def run(session, stage, label: str) -> StageResult:
    """Export the float model and, when quantized, the int8 model; check and time them."""
    from robust_compress.adapters.onnxruntime import runtime as ort
    from robust_compress.adapters.onnxruntime.timing import measure_latency

    if session.out is None:
        raise UserError(f"stage {label}: export needs a run folder (--out DIR).")
    int8 = session.quant_config is not None if stage.int8 == "auto" else stage.int8
    if int8 and session.quant_config is None:
        raise UserError(f"stage {label}: int8 export needs a quantize stage before it.")
    folder, x = session.out.path, session.test_data.head(PARITY_SAMPLES).x
    example = session.example(1).cpu()  # ONNX files are written from CPU copies (the CPU: as is)
    dense = on_cpu(session.dense_model())
    paths = {"dense": ort.export_onnx(dense, folder / "model.dense.onnx", example)}
    info: dict = {}
    if stage.fp32:
        float_model = on_cpu(session.float_reference())
        path = ort.export_onnx(float_model, folder / "model.onnx", example)
        paths["fp32"] = path
        info["fp32"] = {
            "path": path.name,
            "parity_max_abs": ort.parity_max_abs(float_model, path, x),
        }
    if int8:
        quantized = on_cpu(session.model)
        exported = _export_int8(session, quantized, folder / "model.int8.onnx", example)
        path = paths["int8"] = Path(exported["path"])
        info["int8"] = {
            "path": path.name,
            "top1_agreement": ort.top1_agreement(quantized, path, x),
            **_int_file_summary(exported),
        }
    latency = measure_latency(paths, batch_sizes=(1, 64), warmup=10, iters=60, threads=1)
    for name, path in paths.items():
        session.out.record(path)
        entry = info.setdefault(name, {"path": path.name})
        entry["bytes"] = path.stat().st_size
        entry["latency_ms"] = latency[name][1]["median_ms"]
        entry["latency_ms_batch64"] = latency[name][64]["median_ms"]
    info["latency_note"] = "ONNX Runtime CPU, 1 thread, median of 60 interleaved runs"
    return StageResult("onnx", info)


def on_cpu(model):
    """``model`` itself on the CPU; a CPU copy of a model that lives on another device."""
    from robust_compress.devices import model_device

    return model if model_device(model).type == "cpu" else copy.deepcopy(model).cpu()


def _export_int8(session, model, path, example) -> dict:
    from robust_compress.quantization.registry import build_quantizer

    quantizer = build_quantizer(session.quant_config)
    return quantizer.export_with_report(model, path, example)


def _int_file_summary(exported: dict) -> dict:
    """What the integer file stores and whether its kernels are safe on every CPU."""
    storage = exported["weight_storage"]
    return {
        "saturation_safe": exported["saturation_safe"],
        "integer_kernels": len(exported["kernels"]),
        "max_abs_weight": max(
            (k["max_abs_weight"] or 0 for k in exported["kernels"]), default=None
        ),
        "weights_int4": sum(e["storage"] == "int4" for e in storage),
        "not_int4": [f"{e['name']}: {e['reason']}" for e in storage if e["storage"] != "int4"],
        "bytes_int8_container": exported["bytes_int8_container"],
    }
