"""The figure a search makes small: MACs, parameters, ONNX size or ONNX Runtime latency."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

from torch import Tensor, nn

from robust_compress.pruning.size import size_of

PROXY = {"macs": "macs", "params": "params", "onnx_bytes": "params", "latency": "macs"}
"""What the allocation estimates each objective by (the real figure is measured per step)."""


def proxy_value(model: nn.Module, example: Tensor, objective: str) -> float:
    """MACs or parameters of ``model``, whichever stands in for ``objective``."""
    return float(size_of(model, example)[PROXY[objective]])


def objective_value(model: nn.Module, example: Tensor, objective: str, batch: int = 1) -> float:
    """The objective measured: MACs, params, fp32 ONNX bytes, or median latency in ms."""
    if objective in ("macs", "params"):
        return float(size_of(model, example)[objective])
    from robust_compress.adapters.onnxruntime.runtime import export_onnx

    with tempfile.TemporaryDirectory() as folder:
        cpu_copy = copy.deepcopy(model).cpu().eval()
        path = export_onnx(cpu_copy, Path(folder) / "candidate.onnx", example[:1].cpu())
        if objective == "onnx_bytes":
            return float(path.stat().st_size)
        from robust_compress.adapters.onnxruntime.timing import measure_latency

        times = measure_latency({"candidate": path}, (batch,), warmup=10, iters=50)
        return float(times["candidate"][batch]["median_ms"])
