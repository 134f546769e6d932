"""The 16-bit saturation of x86 integer kernels without VNNI, checked on an ONNX file.

Part of the ONNX Runtime adapter (it imports ``onnx``; nothing outside the adapters does).

On x86 CPUs without VNNI (SSE4.1, AVX2, AVX-512 without VNNI) ONNX Runtime's u8 x s8 kernels
(QLinearConv, QGemm, MatMulInteger, ...) multiply bytes with ``(v)pmaddubsw``: each pair of
neighbouring products ``a[k] * w[k] + a[k+1] * w[k+1]`` is added in 16 bits with saturation
before the int32 accumulation. Activations reach the kernel as u8 (ONNX Runtime shifts s8
activations to u8), so a pair sum is bounded by ``255 * (|w[k]| + |w[k+1]|)``; it stays inside
int16 for every input exactly when every weight satisfies ``|w| <= 64`` (``2 * 255 * 64 =
32640 <= 32767``), the threshold ONNX Runtime's own ``Avx2WeightS8ToU8Transformer`` uses.
Full-range int8 weights (up to 127) break it, and the file then answers differently on such a
CPU than on a VNNI CPU or ARM, whose kernels add in 32 bits.

:func:`saturation_report` checks the bound on every integer kernel of the graph ONNX Runtime
actually runs; :func:`saturating_dot` is the ``pmaddubsw`` arithmetic in numpy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import onnx
from onnx import numpy_helper

ACT_MAX = 255
"""Largest activation byte an x86 integer kernel sees (activations are u8 there)."""
INT16_MAX = 32767
SAFE_WEIGHT_MAX = INT16_MAX // (2 * ACT_MAX)
"""Largest ``|w|`` for which no pair of u8 x s8 products can saturate int16: 64."""
WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "QLinearConv": (3,),
    "QGemm": (3,),
    "QLinearMatMul": (3,),
    "MatMulInteger": (1,),
    "ConvInteger": (1,),
    "MatMulIntegerToFloat": (1,),
    "DynamicQuantizeMatMul": (1,),
    "QAttention": (1,),
    "DynamicQuantizeLSTM": (1, 2),
}
"""Integer kernels of ONNX Runtime (those its ``s8_overflow_ops`` lists) and their weights."""
_CHANNELS_FIRST = ("QLinearConv", "ConvInteger")


@dataclass(frozen=True)
class KernelBound:
    """The saturation verdict for one weight of one integer kernel of the optimized graph.

    Attributes:
        node: The node's name in ONNX Runtime's optimized graph.
        op: Its op type (``QLinearConv``, ``QGemm``, ...).
        weight_dtype: ``int8``, ``uint8`` or ``dynamic`` (the weight is not a constant).
        max_abs_weight: The largest ``|w|`` of its int8 weight (None when not int8 or dynamic).
        safe: No input can saturate a 16-bit pair sum in this kernel on any CPU.
    """

    node: str
    op: str
    weight_dtype: str
    max_abs_weight: int | None
    safe: bool


def saturating_dot(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The dot products ``a @ w.T`` as ``pmaddubsw`` computes them.

    Neighbouring products along the reduction axis are added in pairs and saturated to int16,
    then the pairs are added in int32 (an odd length gets a zero partner).

    Args:
        a: u8 activations, shape ``(N, K)``.
        w: s8 weights, shape ``(M, K)``.

    Returns:
        int32 array of shape ``(N, M)``.
    """
    a = np.asarray(a, dtype=np.int32)
    w = np.asarray(w, dtype=np.int32)
    if a.shape[1] % 2:
        a = np.pad(a, ((0, 0), (0, 1)))
        w = np.pad(w, ((0, 0), (0, 1)))
    products = a[:, None, :] * w[None, :, :]
    pairs = products[..., 0::2] + products[..., 1::2]
    return np.clip(pairs, -INT16_MAX - 1, INT16_MAX).sum(-1, dtype=np.int32)


def integer_kernel_weights(path: Path) -> list[tuple[onnx.NodeProto, np.ndarray | None]]:
    """The integer kernels ONNX Runtime runs for ``path`` (``ORT_ENABLE_ALL``) and their weights.

    Returns:
        ``(node, weight)`` per weight operand of each integer kernel, in graph order;
        ``weight`` is None when it is not a constant of the graph.
    """
    from robust_compress.adapters.onnxruntime.runtime import OrtPredictor

    with TemporaryDirectory() as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        OrtPredictor(Path(path), optimized_model_path=optimized)
        graph = onnx.load(str(optimized)).graph
    constants = {init.name: init for init in graph.initializer}
    found = []
    for node in graph.node:
        for index in WEIGHT_INPUTS.get(node.op_type, ()):
            if index < len(node.input) and node.input[index]:
                init = constants.get(node.input[index])
                found.append((node, None if init is None else numpy_helper.to_array(init)))
    return found


def saturation_report(path: Path) -> list[KernelBound]:
    """Check the saturation bound on every integer kernel ONNX Runtime runs for ``path``.

    A kernel's weight is safe when it is u8 (those kernels widen to 16 bits before
    multiplying) or an int8 constant with ``|w| <= 64``.

    Returns:
        One :class:`KernelBound` per kernel weight, in graph order (empty for a float graph).
    """
    return [_kernel_bound(node, w) for node, w in integer_kernel_weights(path)]


def _kernel_bound(node: onnx.NodeProto, w: np.ndarray | None) -> KernelBound:
    name = node.name or node.output[0]
    if w is None:
        return KernelBound(name, node.op_type, "dynamic", None, False)
    if w.dtype == np.uint8:
        return KernelBound(name, node.op_type, "uint8", None, True)
    peak = int(np.abs(w.astype(np.int32)).max()) if w.size else 0
    return KernelBound(name, node.op_type, str(w.dtype), peak, peak <= SAFE_WEIGHT_MAX)


def emulated_saturation_errors(path: Path, rows: int = 64, seed: int = 0) -> int:
    """Count dot products of ``path``'s int8 kernels that saturating arithmetic changes.

    A proxy for what a CPU without VNNI gets wrong, the same on every CPU: each kernel's
    weights, one row per output channel in the ONNX layout (MLAS packs its own pair order),
    meet ``rows`` u8 activation rows, one all-255 and the rest random, through
    :func:`saturating_dot`.

    Args:
        path: An ONNX file.
        rows: Activation rows per kernel.
        seed: Seed of the random rows.

    Returns:
        The number of outputs that differ from the exact int32 result (0 for a safe file).
    """
    rng = np.random.default_rng(seed)
    wrong = 0
    for node, w in integer_kernel_weights(path):
        if w is None or w.dtype != np.int8:
            continue
        w = _output_rows(node, w)
        k = w.shape[1]
        a = np.concatenate([np.full((1, k), ACT_MAX), rng.integers(0, ACT_MAX + 1, (rows - 1, k))])
        exact = a.astype(np.int64) @ w.T.astype(np.int64)
        wrong += int((saturating_dot(a, w) != exact).sum())
    return wrong


def _output_rows(node: onnx.NodeProto, w: np.ndarray) -> np.ndarray:
    """A kernel weight as (outputs, reduction): convs are channels-first, matmuls (K, N)."""
    w = w.astype(np.int32)
    if node.op_type in _CHANNELS_FIRST:
        return w.reshape(w.shape[0], -1)
    trans_b = any(a.name == "transB" and a.i for a in node.attribute)
    if node.op_type == "QGemm" and trans_b:
        return w.reshape(w.shape[0], -1)
    return np.swapaxes(w, -1, -2).reshape(-1, w.shape[-2])


def unsafe_kernels(report: Iterable[KernelBound]) -> list[KernelBound]:
    """The kernels of a :func:`saturation_report` that can saturate without VNNI."""
    return [k for k in report if not k.safe]


def describe_unsafe(report: Iterable[KernelBound]) -> str:
    """One line naming the kernels that break the bound (empty when none does)."""
    return "; ".join(
        f"{k.node} ({k.op}, {k.weight_dtype} weights"
        + (f" up to |w| = {k.max_abs_weight}" if k.max_abs_weight is not None else "")
        + ")"
        for k in unsafe_kernels(report)
    )


def as_dicts(items: Iterable) -> list[dict]:
    """Dataclass reports (kernel bounds, weight storage) as plain data for JSON."""
    return [asdict(item) for item in items]
