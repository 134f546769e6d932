"""Registers the built-in quantizer backends (imported only when a quantizer is built)."""

from __future__ import annotations

from robust_compress.quantization.configs import BrevitasQuantize
from robust_compress.quantization.registry import QUANTIZERS

QUANTIZERS.add(
    "brevitas", "robust_compress.quantization.brevitas_backend:build", config=BrevitasQuantize
)
