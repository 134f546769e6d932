"""The adapter protocols: tensors in, tensors out.

Adapters in ``robust_compress.adapters`` implement these; the engine and users' own training
loops depend only on them. An adapter restores what its library disturbs: a caller gets its
model back exactly as it gave it (train/eval mode, parameter ``.grad``, ``requires_grad``,
BatchNorm buffers).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from torch import Tensor, nn


@runtime_checkable
class Adversary(Protocol):
    """Makes adversarial examples for a live model."""

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Return adversarial inputs for ``(x, y)``, in the input range of ``x``."""
        ...


@runtime_checkable
class Pruner(Protocol):
    """Removes channels from a model step by step."""

    def prepare(self, model: nn.Module, example_inputs: Tensor) -> None:
        """Bind to ``model`` (builds the dependency graph)."""
        ...

    def step(self) -> bool:
        """Prune one step; True when parameter shapes changed (rebuild the optimizer)."""
        ...


@runtime_checkable
class Quantizer(Protocol):
    """Turns a float model into a fake-quant model and exports it as int8 ONNX."""

    def prepare(self, model: nn.Module, calib: Iterable[Tensor]) -> nn.Module:
        """Return a calibrated fake-quant model ready for quantization-aware training."""
        ...

    def export(self, model: nn.Module, path: Path, example: Tensor) -> Path:
        """Write the fake-quant ``model`` as an int8 (QCDQ) ONNX file and return its path."""
        ...

    def export_with_report(self, model: nn.Module, path: Path, example: Tensor) -> dict:
        """Export like :meth:`export`; return ``{"path", ...}`` with what the file stores."""
        ...
