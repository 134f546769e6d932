"""Config classes of the quantize stage: the stage's own fields and one member per backend.

``- quantize: {backend: brevitas, weight_bits: 8, qat_epochs: 1}`` validates into the member
registered for ``backend`` (default ``brevitas``) in
:data:`~robust_compress.quantization.registry.QUANTIZERS`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from robust_compress.attacks.configs import AdversaryConfig
from robust_compress.config import BaseStage, Dispatching, OptimizerConfig, family_base
from robust_compress.registry import Registry
from robust_compress.training.distill import DistillConfig


@family_base
class QuantizeStage(Dispatching, BaseStage):
    """Quantization: calibration, then optional quantization-aware (adversarial) training."""

    kind: ClassVar[str] = "quantize"
    dispatch_key: ClassVar[str] = "backend"
    dispatch_default: ClassVar[str | None] = "brevitas"
    backend: str = "brevitas"
    qat_epochs: int = Field(0, ge=0)
    adversary: AdversaryConfig | None = None
    distill: DistillConfig | None = None
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)

    @classmethod
    def registry(cls) -> Registry:
        """The quantizer-backend registry."""
        from robust_compress.quantization.registry import QUANTIZERS

        return QUANTIZERS

    def quantizer_options(self) -> dict[str, Any]:
        """The backend's options as plain data (kept in checkpoints to rebuild the model)."""
        stage_fields = set(QuantizeStage.model_fields) - {"backend"}
        return self.model_dump(exclude=stage_fields)


class BrevitasQuantize(QuantizeStage):
    """Brevitas fake-quant (QAT-ready), exported as QDQ ONNX that ONNX Runtime runs in int8."""

    backend: Literal["brevitas"] = "brevitas"
    weight_bits: int = Field(8, ge=2, le=8)
    act_bits: int = Field(8, ge=4, le=8)
    per_channel: bool = True
    calib_batches: int = Field(8, ge=1)
    bias_correction: bool = True
    vnni_only_full_range: bool = False
    pack_low_bits: bool = True
    layer_bits: dict[str, Annotated[int, Field(ge=2, le=8)]] = Field(default_factory=dict)
