"""Config classes of the quantize stage and its backends."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from robust_compress.attacks.configs import AdversaryConfig
from robust_compress.config import BaseStage, OptimizerConfig


class QuantizeStage(BaseStage):
    """Quantization: calibration, then optional quantization-aware (adversarial) training."""

    kind: ClassVar[str] = "quantize"
    weight_bits: int = Field(8, ge=2, le=8)
    act_bits: int = Field(8, ge=4, le=8)
    per_channel: bool = True
    calib_batches: int = Field(8, ge=1)
    bias_correction: bool = True
    vnni_only_full_range: bool = False
    pack_low_bits: bool = True
    qat_epochs: int = Field(0, ge=0)
    adversary: AdversaryConfig | None = None
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
