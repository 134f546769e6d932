"""The Brevitas backend: its options in, the Brevitas adapter's quantizer out."""

from __future__ import annotations

from typing import Any

from robust_compress.protocols import Quantizer


def build(options: dict[str, Any]) -> Quantizer:
    """A :class:`~robust_compress.adapters.brevitas.quantizer.BrevitasQuantizer`."""
    from robust_compress.adapters.brevitas.quantizer import BrevitasQuantizer

    return BrevitasQuantizer(**options)
