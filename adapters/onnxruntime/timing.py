"""Latency of ONNX files in ONNX Runtime: interleaved timed runs and per-node profiles."""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from robust_compress.adapters.onnxruntime.runtime import OrtPredictor, _session_options
from robust_compress.errors import UserError

log = logging.getLogger(__name__)


def measure_latency(
    paths: dict[str, Path],
    batch_sizes: tuple[int, ...] = (1, 64),
    warmup: int = 20,
    iters: int = 200,
    threads: int = 1,
) -> dict:
    """Time ONNX files side by side, interleaved so that machine noise hits all alike.

    Each round runs every model once on the same random input; the order of the models rotates
    every round. Only ``session.run`` is timed.

    Args:
        paths: Model name -> ONNX file.
        batch_sizes: Batch sizes to time.
        warmup: Untimed rounds per batch size.
        iters: Timed rounds per batch size.
        threads: Intra-op threads of each session.

    Returns:
        ``{name: {batch_size: {"median_ms": float, "p90_ms": float, "iters": int}}}``.
    """
    if not paths or iters < 1 or warmup < 0:
        raise UserError("measure_latency needs at least one model, iters >= 1 and warmup >= 0.")
    predictors = {name: OrtPredictor(p, threads=threads) for name, p in paths.items()}
    names = list(predictors)
    rng = np.random.default_rng(0)
    results: dict = {name: {} for name in names}
    for bs in batch_sizes:
        shapes = {predictors[n].input_shape for n in names}
        inputs = {s: rng.random((bs, *s), dtype=np.float32) for s in shapes}
        times: dict[str, list[float]] = {name: [] for name in names}
        for i in range(warmup + iters):
            for k in range(len(names)):
                name = names[(i + k) % len(names)]
                pred = predictors[name]
                start = time.perf_counter()
                pred.run_numpy(inputs[pred.input_shape])
                if i >= warmup:
                    times[name].append((time.perf_counter() - start) * 1e3)
        for name in names:
            results[name][bs] = _summary(times[name])
    log.info("latency measured for %s at batch sizes %s", ", ".join(names), batch_sizes)
    return results


def _summary(ms: list[float]) -> dict:
    ordered = sorted(ms)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {"median_ms": statistics.median(ordered), "p90_ms": p90, "iters": len(ordered)}


def runtime_versions() -> dict[str, str]:
    """Versions of ``onnxruntime`` and ``onnx``, for reports."""
    return {"onnxruntime": ort.__version__, "onnx": onnx.__version__}


def node_times(path: Path, batch: int = 1, runs: int = 200, threads: int = 1) -> list[dict]:
    """Median kernel time of each node ONNX Runtime runs for ``path``, from its profiler.

    Shows where the time of a small model goes: at batch 1 every node costs a few
    microseconds however little it computes, so extra Quantize/Transpose nodes can outweigh
    cheaper integer arithmetic.

    Args:
        path: The ONNX file.
        batch: Batch size of the random input.
        runs: Profiled runs (the first run is left out).
        threads: Intra-op threads.

    Returns:
        One ``{"node", "op", "median_us"}`` per node of the optimized graph, in run order.
    """
    shape = OrtPredictor(path).input_shape
    with tempfile.TemporaryDirectory() as tmp:
        opts = _session_options(threads, None)
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {
            session.get_inputs()[0].name: np.random.default_rng(0).random(
                (batch, *shape), dtype=np.float32
            )
        }
        for _ in range(runs + 1):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    times: dict[str, list[float]] = {}
    ops: dict[str, str] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            times.setdefault(event["name"], []).append(float(event["dur"]))
            ops[event["name"]] = event["args"].get("op_name", "?")
    return [
        {
            "node": name.removesuffix("_kernel_time"),
            "op": ops[name],
            "median_us": statistics.median(durs[1:] or durs),
        }
        for name, durs in times.items()
    ]
