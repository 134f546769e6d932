"""ONNX Runtime adapter: fp32 ONNX export, inference sessions, parity checks and latency.

This is the only module of robust-compress that imports ``onnx`` and ``onnxruntime``. Graphs it
writes have one input named ``input`` (images in [0, 1], shape (N, C, H, W), N dynamic) and one
output named ``logits``. Sessions run on the CPU execution provider with the full set of graph
optimizations (``ORT_ENABLE_ALL``), which is what fuses a QCDQ int8 graph into integer kernels.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from robust_compress.adapters.onnxruntime.exportable import exportable
from robust_compress.errors import UserError, first_line

log = logging.getLogger(__name__)

INPUT_NAME, OUTPUT_NAME = "input", "logits"
OPSET = 17
_QUIET_WARNINGS = (
    "You are using the legacy TorchScript-based ONNX export",
    "The feature will be removed",
)


def export_onnx(model: nn.Module, path: Path, example: Tensor, dynamic_batch: bool = True) -> Path:
    """Export a float model to ONNX and check the file with ``onnx.checker``.

    Uses torch's TorchScript exporter (``dynamo=False``): in torch 2.14 it is fast, prints
    nothing and handles every model of this package; the dynamo exporter takes seconds and
    prints progress lines.

    Args:
        model: The float model; its train/eval mode is restored afterwards.
        path: Where to write the ``.onnx`` file; parent folders are created.
        example: An input batch of the right shape.
        dynamic_batch: Make the batch axis dynamic (else it is fixed to ``len(example)``).

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings(), exportable(model, example):
            for message in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            torch.onnx.export(
                model,
                (example.detach(),),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
            )
        onnx.checker.check_model(str(path), full_check=True)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types
        raise export_error(model, path, exc) from None
    finally:
        model.train(was_training)
    log.info("exported fp32 ONNX to %s", path)
    return path


def export_error(model: nn.Module, path: Path, exc: BaseException) -> UserError:
    """A failed ONNX export as a UserError: what failed and what to change."""
    return UserError(
        f"torch cannot export {type(model).__name__} to ONNX ({path.name}): "
        f"{type(exc).__name__}: {first_line(exc)[:300]}. The model uses an operation ONNX "
        f"opset {OPSET} cannot express: rewrite that part of its forward() with standard "
        "layers, or choose another model."
    )


def _session_options(threads: int, optimized_model_path: Path | None) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only: ORT writes warnings straight to stderr
    if optimized_model_path is not None:
        Path(optimized_model_path).parent.mkdir(parents=True, exist_ok=True)
        opts.optimized_model_filepath = str(optimized_model_path)
    return opts


class OrtPredictor:
    """An ONNX Runtime CPU session that takes and returns torch tensors.

    Attributes:
        path: The ONNX file.
        session: The ``onnxruntime.InferenceSession``.
        input_shape: ``(C, H, W)`` of one input, read from the graph's input.
        fixed_batch: The graph's batch size if it is fixed, else None.
    """

    def __init__(self, path: Path, threads: int = 1, optimized_model_path: Path | None = None):
        """Open a session on ``path``.

        Args:
            path: An ONNX file with one image input.
            threads: Intra-op threads of the session.
            optimized_model_path: If given, ONNX Runtime saves its optimized graph there.

        Raises:
            UserError: The file is missing or not a model with one (N, C, H, W) input.
        """
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"ONNX file {self.path} does not exist; export the model first.")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise UserError(f"threads must be a positive integer, got {threads!r}.")
        opts = _session_options(threads, optimized_model_path)
        try:
            self.session = ort.InferenceSession(
                str(self.path), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise UserError(f"ONNX Runtime cannot load {self.path}: {exc}") from exc
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        if len(inp.shape) != 4 or not all(isinstance(d, int) for d in inp.shape[1:]):
            raise UserError(
                f"{self.path}: expected one input of shape (N, C, H, W) with fixed C, H, W, "
                f"got {inp.shape}."
            )
        self.input_shape: tuple = tuple(inp.shape[1:])
        self.fixed_batch: int | None = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def __call__(self, x: Tensor) -> Tensor:
        """Return the logits for a batch ``x`` of any size, as a float torch tensor."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise UserError(
                f"input of shape {tuple(x.shape)} does not fit {self.path}, which takes "
                f"(N, {', '.join(map(str, self.input_shape))})."
            )
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.run_numpy(arr))

    def run_numpy(self, arr: np.ndarray) -> np.ndarray:
        """Run a float32 batch; a graph with a fixed batch size gets it in padded chunks."""
        if self.fixed_batch is None or len(arr) == self.fixed_batch:
            return self.session.run([self.output_name], {self.input_name: arr})[0]
        b, outs = self.fixed_batch, []
        for i in range(0, len(arr), b):
            chunk = arr[i : i + b]
            pad = b - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), np.float32)])
            outs.append(self.session.run([self.output_name], {self.input_name: chunk})[0])
        return np.concatenate(outs)[: len(arr)]


def _torch_logits(model: nn.Module, x: Tensor) -> Tensor:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x).float().cpu()
    finally:
        model.train(was_training)


def parity_max_abs(model: nn.Module, path: Path, x: Tensor) -> float:
    """Largest absolute difference between the logits of ``model`` (eval) and of the ONNX file."""
    return float((_torch_logits(model, x) - OrtPredictor(path)(x)).abs().max())


def top1_agreement(model: nn.Module, path: Path, x: Tensor) -> float:
    """Share of inputs on which ``model`` (eval) and the ONNX file predict the same class."""
    same = _torch_logits(model, x).argmax(1) == OrtPredictor(path)(x).argmax(1)
    return float(same.float().mean())


def optimized_op_types(path: Path) -> Counter:
    """Count the op types of the graph ONNX Runtime runs (``ORT_ENABLE_ALL``) for ``path``.

    A well-formed int8 QCDQ graph shows ``QLinearConv`` and ``QGemm`` here and no float
    ``Conv``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        OrtPredictor(path, optimized_model_path=optimized)
        graph = onnx.load(str(optimized)).graph
        return Counter(node.op_type for node in graph.node)


def check_onnx_input(path: Path, input_shape: tuple[int, ...], num_classes: int) -> None:
    """Check an ONNX file a user hands us before anything runs on it.

    ``onnx.checker`` validates the file; its input must take (N, *input_shape) and its output
    must give ``num_classes`` logits per example.

    Raises:
        UserError: The file is not a valid ONNX model or does not fit the data.
    """
    path = Path(path)
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001 - onnx raises several types for bad files
        first = first_line(exc)
        raise UserError(f"{path} is not a valid ONNX model (onnx.checker: {first}).") from None
    predictor = OrtPredictor(path)
    if tuple(predictor.input_shape) != tuple(input_shape):
        raise UserError(
            f"{path} takes inputs of shape (N, {', '.join(map(str, predictor.input_shape))}) but "
            f"the dataset's images are (N, {', '.join(map(str, input_shape))})."
        )
    out = predictor(torch.zeros(1, *input_shape))
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise UserError(
            f"{path} returns shape {tuple(out.shape)} per batch but the dataset has "
            f"{num_classes} classes: expected (N, {num_classes})."
        )
