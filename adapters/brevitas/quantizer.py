"""Brevitas adapter: a float model becomes a calibrated fake-quant model, exported as int8 ONNX.

This is the only module of robust-compress that imports Brevitas. What it does, in order:

1. copy the model (the caller's model is never touched) and trace it with ``torch.fx``;
2. fold BatchNorm into the convolutions (``preprocess_for_quantize``);
3. swap layers for Brevitas quantized layers (``quantize``): signed weights of ``weight_bits``
   bits, per output channel or per tensor; 8-bit activations; int32 bias. 8-bit weights use
   the 7-bit range [-63, 63] unless ``vnni_only_full_range`` is set (see below);
4. calibrate the activation scales on ``calib_batches`` batches (``calibration_mode``);
5. correct the bias for the mean error quantization adds (``bias_correction_mode``).

The result is a fake-quant ``nn.Module`` for quantization-aware training: rounding uses a
straight-through estimator, so gradients reach the weights and the *input* (an attack like PGD
works on it). :meth:`BrevitasQuantizer.export` writes it as a QCDQ ONNX file
(QuantizeLinear/Clip/DequantizeLinear around float ops) that ONNX Runtime fuses into integer
kernels (QLinearConv, QGemm).

**Every CPU, and 4 bits.** ``weight_bits=8`` trains and exports the 7-bit grid [-63, 63] in
int8 storage, which x86 CPUs without VNNI cannot saturate; the export refuses full-range
weights unless ``vnni_only_full_range=True``
(:mod:`robust_compress.adapters.onnxruntime.saturation`).
Weights of 4 bits or fewer are stored as INT4 (:mod:`robust_compress.adapters.onnxruntime.lowbit`).

Traps of Brevitas 0.13.4 handled here: the dynamo exporter rejects the default quantized bias
(so ``dynamo=False``); ``keep_initializers_as_inputs=True`` stops ONNX Runtime's constant
folding, so convolutions stay float; export needs ``onnxoptimizer`` installed.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from robust_compress.adapters.brevitas.calibration import calibrate, device_of, take_batches
from robust_compress.adapters.brevitas.compat import quantized_graph
from robust_compress.adapters.brevitas.layer_bits import apply_layer_bits
from robust_compress.adapters.onnxruntime import intfile as ort_intfile
from robust_compress.adapters.onnxruntime import runtime as ort_runtime
from robust_compress.adapters.onnxruntime.exportable import exportable
from robust_compress.errors import UserError

# compat (imported above) has quieted Brevitas' import notices.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from brevitas.export import export_onnx_qcdq
    from brevitas.graph.quantize import COMPUTE_LAYER_MAP, QUANT_ACT_MAP, QUANT_IDENTITY_MAP
    from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat

log = logging.getLogger(__name__)

MIN_BITS, MAX_BITS = 2, 8
SAFE_INT8_GRID_BITS = 7
"""Bits of the weight grid ``weight_bits=8`` uses: [-63, 63] cannot saturate on AVX2."""
INPUT_NAME, OUTPUT_NAME = "input", "logits"
_QUIET_WARNINGS = (
    "`treespec.children_specs` is deprecated",
    "You are using the legacy TorchScript-based ONNX export",
    "The feature will be removed",
    "ONNX opset version set to",
)


@dataclass
class BrevitasQuantizer:
    """Quantizer (see :class:`robust_compress.protocols.Quantizer`) built on Brevitas.

    Attributes:
        weight_bits: Bits of the signed weights, 2 to 8 (8 and 4 are the usual choices).
        act_bits: Bits of the activations, 2 to 8; only 8 maps onto int8 kernels unclipped.
        per_channel: One weight scale per output channel (True) or per tensor (False).
        calib_batches: Batches of the calibration data used to set activation scales (and
            again for bias correction).
        bias_correction: Correct each layer's bias for the mean output shift quantization adds.
        vnni_only_full_range: With ``weight_bits=8``, use the full int8 range [-127, 127]
            instead of [-63, 63]. Such a file gives wrong answers on x86 CPUs without VNNI
            (AVX2, AVX-512 without VNNI); set this only for a fleet of VNNI (or ARM) CPUs.
        pack_low_bits: Store weights of 4 bits or fewer as ONNX INT4 (half the bytes of int8;
            ONNX Runtime dequantizes them to float at load and runs float convolutions).
            False keeps them in int8 containers, which ONNX Runtime runs on int8 kernels.
        layer_bits: Weight bits of single layers by name (mixed precision), overriding
            ``weight_bits`` for them; a search stage chooses them from robust sensitivity.

    Raises:
        UserError: A bit width or the number of calibration batches is out of range.
    """

    weight_bits: int = 8
    act_bits: int = 8
    per_channel: bool = True
    calib_batches: int = 8
    bias_correction: bool = True
    vnni_only_full_range: bool = False
    pack_low_bits: bool = True
    layer_bits: dict[str, int] = field(default_factory=dict)

    @property
    def grid_bits(self) -> int:
        """Bits of the weight grid actually used (7 for ``weight_bits=8`` unless full range)."""
        return self.grid_of(self.weight_bits)

    def grid_of(self, bits: int) -> int:
        """The grid a weight bit width uses: 8 bits use 7 unless ``vnni_only_full_range``."""
        if bits == 8 and not self.vnni_only_full_range:
            return SAFE_INT8_GRID_BITS
        return bits

    def __post_init__(self) -> None:
        named = [(f"layer_bits[{k!r}]", v) for k, v in self.layer_bits.items()]
        for name, value in [(n, getattr(self, n)) for n in ("weight_bits", "act_bits")] + named:
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not (MIN_BITS <= value <= MAX_BITS)
            ):
                raise UserError(
                    f"{name} must be an integer from {MIN_BITS} to {MAX_BITS} (8 or 4 for "
                    f"int8 ONNX Runtime kernels), got {value!r}."
                )
        if (
            isinstance(self.calib_batches, bool)
            or not isinstance(self.calib_batches, int)
            or (self.calib_batches < 1)
        ):
            raise UserError(
                f"calib_batches must be a positive integer, got {self.calib_batches!r}."
            )

    def prepare(self, model: nn.Module, calib: Iterable[Tensor]) -> nn.Module:
        """Return a new, calibrated fake-quant copy of ``model`` (``model`` is left untouched).

        Args:
            model: A float model that ``torch.fx`` can trace; BatchNorm is folded.
            calib: Input batches in the model's input range; ``(x, y)`` pairs are accepted too
                (the labels are ignored). Only the first ``calib_batches`` are read.

        Returns:
            The fake-quant model, in the train/eval mode ``model`` was in.

        Raises:
            UserError: No calibration batch, or a model ``torch.fx`` cannot trace.
        """
        device = device_of(model)
        batches = take_batches(calib, self.calib_batches, device)
        with warnings.catch_warnings():
            for message in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            qmodel = self._quantized_copy(model)
        qmodel.eval()
        calibrate(qmodel, batches, self.bias_correction, type(model).__name__)
        qmodel.train(model.training)
        log.info(
            "quantized %s: w%d (grid %d bits) a%d %s, calibrated on %d batches%s",
            type(model).__name__,
            self.weight_bits,
            self.grid_bits,
            self.act_bits,
            "per-channel" if self.per_channel else "per-tensor",
            len(batches),
            ", bias corrected" if self.bias_correction else "",
        )
        return qmodel

    def export(self, model: nn.Module, path: Path, example: Tensor) -> Path:
        """Write the fake-quant ``model`` as a QCDQ integer ONNX file with a dynamic batch axis.

        See :meth:`export_with_report`, which also says how each layer is stored.

        Returns:
            ``path``. The graph's input is named ``input`` and its output ``logits``.
        """
        return Path(self.export_with_report(model, path, example)["path"])

    def export_with_report(self, model: nn.Module, path: Path, example: Tensor) -> dict:
        """Export like :meth:`export`; return what the file stores and its saturation check.

        The file is written beside ``path`` first and moved into place only once it passes:
        value names are shortened, weights of 4 bits or fewer are packed as INT4, and every
        integer kernel ONNX Runtime builds from it is checked against the saturation bound of
        CPUs without VNNI.

        Args:
            model: A model returned by :meth:`prepare` (possibly trained further).
            path: Where to write the ``.onnx`` file; parent folders are created.
            example: An input batch of the right shape (its values do not matter).

        Returns:
            ``{"path", "weight_storage", "kernels", "saturation_safe", "bytes_int8_container"}``:
            per dequantized constant its storage type (and why it was not packed), per
            integer kernel weight its bound, and the size the file had before packing.

        Raises:
            UserError: The file's integer kernels can saturate on CPUs without VNNI and
                ``vnni_only_full_range`` is not set, or the file cannot be packed or loaded.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.partial")
        try:
            self._write_qcdq(model, draft, example)
            lowest = min([self.weight_bits, *self.layer_bits.values()])
            packs = self.pack_low_bits and lowest <= 4
            report = ort_intfile.finish(draft, path, packs, self.vnni_only_full_range)
            draft.replace(path)
        except UserError as exc:
            raise UserError(str(exc).replace(str(draft), str(path))) from None
        finally:
            draft.unlink(missing_ok=True)
        log.info("exported integer QCDQ ONNX to %s", path)
        return {"path": str(path), **report}

    def _write_qcdq(self, model: nn.Module, path: Path, example: Tensor) -> None:
        export_model = copy.deepcopy(model)  # export attaches handlers; keep the caller's clean
        example = example[:1].detach().to(device_of(model))
        with warnings.catch_warnings(), exportable(export_model, example):
            for message in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            try:
                export_onnx_qcdq(
                    export_model,
                    args=example,
                    export_path=str(path),
                    dynamo=False,
                    opset_version=ort_runtime.OPSET,
                    keep_initializers_as_inputs=False,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                )
            except Exception as exc:  # noqa: BLE001 - the exporter raises many types
                raise ort_runtime.export_error(model, path, exc) from None

    def _quantized_copy(self, model: nn.Module) -> nn.Module:
        """Trace a copy of ``model``, fold BatchNorm and swap in quantized layers."""
        float_copy = copy.deepcopy(model).eval()
        for p in float_copy.parameters():
            p.grad = None
        qmodel = quantized_graph(float_copy, self._quant_maps())
        apply_layer_bits(qmodel, self.layer_bits, self.grid_of)
        return qmodel

    def _quant_maps(self) -> dict[str, dict]:
        """Brevitas' default layer maps, with this quantizer's bit widths and granularity."""
        weight_base = Int8WeightPerChannelFloat if self.per_channel else Int8WeightPerTensorFloat
        weight_quant = weight_base.let(bit_width=self.grid_bits)
        compute = {
            layer: _with(entry, "weight_quant", weight_quant)
            for layer, entry in COMPUTE_LAYER_MAP.items()
        }
        acts = {layer: self._act_entry(entry) for layer, entry in QUANT_ACT_MAP.items()}
        identity = {kind: self._act_entry(entry) for kind, entry in QUANT_IDENTITY_MAP.items()}
        return {"compute_layer_map": compute, "quant_act_map": acts, "quant_identity_map": identity}

    def _act_entry(self, entry: Any) -> Any:
        if entry is None or "act_quant" not in entry[1]:
            return entry
        return _with(entry, "act_quant", entry[1]["act_quant"].let(bit_width=self.act_bits))


def _with(entry: Any, key: str, value: Any) -> Any:
    """Copy a ``(layer class, kwargs)`` map entry with ``kwargs[key] = value``."""
    if entry is None or key not in entry[1]:
        return entry
    layer_cls, kwargs = entry
    return layer_cls, {**kwargs, key: value}
