"""The quantizer-backend registry: what turns a float model into fake-quant and integer ONNX.

An entry's item is ``build(options: dict) -> Quantizer`` (see
:class:`robust_compress.protocols.Quantizer`); its config class is a member of
:class:`~robust_compress.quantization.configs.QuantizeStage` holding the backend's own fields.
The options (the backend's fields as plain data, with ``backend``) are what checkpoints keep
to rebuild the fake-quant model.
"""

from __future__ import annotations

from typing import Any

from robust_compress.protocols import Quantizer
from robust_compress.registry import QUANTIZERS

__all__ = ["DEFAULT_BACKEND", "QUANTIZERS", "build_quantizer"]
DEFAULT_BACKEND = "brevitas"


def build_quantizer(options: dict[str, Any]) -> Quantizer:
    """The one quantizer factory: the backend ``options["backend"]`` names, built from them.

    Options saved before backends had names carry no ``backend``: they are Brevitas's.
    """
    options = dict(options)
    backend = options.pop("backend", DEFAULT_BACKEND)
    return QUANTIZERS.get(backend)(options)
