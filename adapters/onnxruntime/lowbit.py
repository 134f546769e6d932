"""Weights stored in 4 bits, and short value names, in an integer ONNX file.

Part of the ONNX Runtime adapter (it imports ``onnx``; nothing outside the adapters does).

Brevitas writes low-bit weights as int8 initializers behind a Clip. :func:`pack_low_bit_weights`
stores every weight whose values fit in 4 bits (2- and 3-bit weights too) as an ONNX INT4 tensor
(opset 21, two values a byte) feeding DequantizeLinear directly, so the file's size reflects the
bits. ONNX Runtime has no 4-bit convolution kernel: it dequantizes those weights to float when
it loads the file. INT2 (opset 25) is not used: ONNX Runtime 1.32 fuses an INT2
DequantizeLinear into QLinearConv and then rejects the file (``Type 'tensor(int2)' ... of
operator (QLinearConv) is invalid``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, version_converter

from robust_compress.errors import UserError, first_line

log = logging.getLogger(__name__)

INT4_RANGE = (-8, 7)
INT4_OPSET = 21
INT4_IR_VERSION = 10
"""The first IR version with INT4 tensors."""


@dataclass(frozen=True)
class PackedWeight:
    """What :func:`pack_low_bit_weights` did with one dequantized constant.

    Attributes:
        name: The DequantizeLinear node.
        storage: ``int4`` when packed, else the type it keeps (``int8``, ``int32``).
        reason: Why it was not packed (empty when it was).
    """

    name: str
    storage: str
    reason: str = ""


def pack_low_bit_weights(path: Path) -> list[PackedWeight]:
    """Rewrite ``path`` so that int8 weights whose values fit in 4 bits are stored as INT4.

    The file is converted to opset 21 first (``onnx.version_converter``). Then a
    DequantizeLinear fed by an int8 constant (directly or through a Clip with constant bounds)
    whose clipped values and zero point fit INT4 ([-8, 7]) reads an INT4 constant instead; a
    Clip no other node reads is removed. Biases (int32, at the accumulator's scale) and
    activations keep their types. The result passes ``onnx.checker``.

    Returns:
        One :class:`PackedWeight` per DequantizeLinear of a constant, saying what it stores.

    Raises:
        UserError: The graph cannot be moved to opset 21 or fails the checker afterwards.
    """
    model = _at_opset(onnx.load(str(path)), path)
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    packer = _Packer(constants, producers, readers)
    report = [
        entry
        for node in graph.node
        if node.op_type == "DequantizeLinear" and (entry := packer.pack(node)) is not None
    ]
    if packer.added:
        graph.initializer.extend(packer.added.values())
        kept = [node for node in graph.node if id(node) not in packer.dropped]
        del graph.node[:]
        graph.node.extend(kept)
        _drop_unused_initializers(graph)
        _check(model, path)
        onnx.save(model, str(path))
    log.info("%s: %s", path.name, ", ".join(f"{e.name}: {e.storage}" for e in report))
    return report


class _Packer:
    """Packs DequantizeLinear inputs one node at a time; remembers what it added and dropped."""

    def __init__(self, constants: dict, producers: dict, readers: dict):
        self.constants, self.producers, self.readers = constants, producers, readers
        self.added: dict[str, onnx.TensorProto] = {}
        self.dropped: set[int] = set()

    def pack(self, node: onnx.NodeProto) -> PackedWeight | None:
        """Pack one DequantizeLinear's constant input when it fits 4 bits; say why not else."""
        label = node.name or node.output[0]
        source, clip = node.input[0], self._clip_of(node.input[0])
        if clip is not None:
            source = clip.input[0]
        if source not in self.constants:
            return None  # an activation: quantized at run time, not stored
        values = numpy_helper.to_array(self.constants[source])
        zero = self._zero_point(node)
        if values.dtype != np.int8:
            why = f"{values.dtype} data (biases stay int32)"
            return PackedWeight(label, str(values.dtype), why)
        if zero is False:
            return PackedWeight(label, "int8", "its zero point is not a constant")
        if clip is not None:
            values = np.clip(values, *self._bounds(clip)).astype(np.int8)
        if not (_fits(values) and (zero is None or _fits(zero))):
            peak = int(np.abs(values.astype(np.int32)).max())
            return PackedWeight(label, "int8", f"values up to |w| = {peak} need more than 4 bits")
        node.input[0] = self._add(f"{source}_int4", values)
        if zero is not None:
            node.input[2] = self._add(f"{node.input[2]}_int4", zero)
        if clip is not None and self.readers.get(clip.output[0], 0) == 1:
            self.dropped.add(id(clip))
        return PackedWeight(label, "int4")

    def _clip_of(self, name: str) -> onnx.NodeProto | None:
        clip = self.producers.get(name)
        if name in self.constants or clip is None or clip.op_type != "Clip":
            return None
        bounds = list(clip.input[1:3])
        return clip if len(bounds) == 2 and all(b in self.constants for b in bounds) else None

    def _bounds(self, clip: onnx.NodeProto) -> tuple[int, int]:
        low, high = (int(numpy_helper.to_array(self.constants[b])) for b in clip.input[1:3])
        return low, high

    def _zero_point(self, node: onnx.NodeProto) -> np.ndarray | None | bool:
        """The zero point as an array, None when absent, False when it is not a constant."""
        if len(node.input) < 3 or not node.input[2]:
            return None
        init = self.constants.get(node.input[2])
        return False if init is None else numpy_helper.to_array(init)

    def _add(self, name: str, values: np.ndarray) -> str:
        if name not in self.added:
            self.added[name] = helper.make_tensor(
                name, TensorProto.INT4, values.shape, _pack_nibbles(values), raw=True
            )
        return name


def _fits(values: np.ndarray) -> bool:
    return values.size == 0 or (INT4_RANGE[0] <= values.min() and values.max() <= INT4_RANGE[1])


def _pack_nibbles(values: np.ndarray) -> bytes:
    """Signed 4-bit values, two a byte, the first in the low nibble (ONNX's INT4 layout)."""
    flat = values.astype(np.int8).flatten().view(np.uint8) & 0x0F
    flat = np.append(flat, np.zeros(flat.size % 2, np.uint8))
    return (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8).tobytes()


def _at_opset(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    """The model converted to opset 21 (where DequantizeLinear takes INT4), IR version >= 10."""
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if version < INT4_OPSET:
        try:
            model = version_converter.convert_version(model, INT4_OPSET)
        except Exception as exc:  # noqa: BLE001 - the converter raises several types
            first = first_line(exc)
            raise UserError(
                f"{path.name}: cannot move the graph to opset {INT4_OPSET} for 4-bit storage "
                f"({first}); export with pack_low_bits=False to keep int8 containers."
            ) from None
    model.ir_version = max(model.ir_version, INT4_IR_VERSION)
    return model


def _check(model: onnx.ModelProto, path: Path) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        first = first_line(exc)
        raise UserError(
            f"{path.name}: the 4-bit graph fails onnx.checker ({first}); export with "
            "pack_low_bits=False to keep int8 containers."
        ) from None


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def compact_value_names(path: Path) -> None:
    """Rename the values of ``path`` (not its input and output) to short ones, in place.

    Brevitas names each value after its module path (``/features.0/weight_quant/
    export_handler/Constant_2_output_0``): in a small model those names are a sixth of the
    file. Node names, which profilers show, are kept.
    """
    model = onnx.load(str(path))
    graph = model.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output} | {""}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        return name if name in keep else names.setdefault(name, f"v{len(names)}")

    for init in graph.initializer:
        init.name = short(init.name)
    for info in graph.value_info:
        info.name = short(info.name)
    for node in graph.node:
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    onnx.save(model, str(path))
