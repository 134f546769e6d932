"""Layers torch's ONNX exporter refuses, swapped for exact equivalents while a model is exported.

torch's TorchScript exporter writes ``AdaptiveAvgPool2d`` only when each input side is a
multiple of the output side. torchvision's VGG pools its 512 feature maps to 7x7 (AlexNet to
6x6): on images smaller than 224x224 the maps are 1x1 or 2x2 and the export fails. The pooling
is a fixed average over windows, so it is written here as two matrix products with constant
matrices (exactly the windows PyTorch averages), which every exporter and runtime takes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn


class MatmulAdaptiveAvgPool2d(nn.Module):
    """``AdaptiveAvgPool2d`` for one input size, as ``rows @ x @ cols`` (exact).

    Args:
        in_size: (height, width) of the input it was built for.
        out_size: (height, width) of the output.
    """

    def __init__(self, in_size: tuple[int, int], out_size: tuple[int, int]):
        super().__init__()
        self.register_buffer("rows", pool_matrix(in_size[0], out_size[0]), persistent=False)
        self.register_buffer("cols", pool_matrix(in_size[1], out_size[1]).t(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Average ``x`` (N, C, H, W) over PyTorch's adaptive windows."""
        if not isinstance(x, Tensor):  # a quantized tensor of a fake-quant model
            x = x.value
        return torch.matmul(torch.matmul(self.rows, x), self.cols)


def pool_matrix(n_in: int, n_out: int) -> Tensor:
    """The (n_out, n_in) matrix averaging PyTorch's adaptive windows along one side."""
    matrix = torch.zeros(n_out, n_in)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def _refused_pools(model: nn.Module, example: Tensor) -> dict[str, nn.Module]:
    """Replacements for the adaptive pools the exporter would refuse on ``example``."""
    pools = {n: m for n, m in model.named_modules() if isinstance(m, nn.AdaptiveAvgPool2d)}
    if not pools:
        return {}
    sizes: dict[str, tuple[int, int]] = {}

    def record(module: nn.Module, inputs: tuple) -> None:  # a returned value would replace inputs
        sizes.setdefault(names[module], tuple(inputs[0].shape[-2:]))

    names = {m: n for n, m in pools.items()}
    hooks = [m.register_forward_pre_hook(record) for m in pools.values()]
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    swaps = {}
    for name, size in sizes.items():
        out = _pair(pools[name].output_size, size)
        if size[0] % out[0] or size[1] % out[1]:
            swaps[name] = MatmulAdaptiveAvgPool2d(size, out)
    return swaps


def _pair(output_size, in_size: tuple[int, int]) -> tuple[int, int]:
    if isinstance(output_size, int):
        return output_size, output_size
    return tuple(i if o is None else o for o, i in zip(output_size, in_size, strict=True))


@contextlib.contextmanager
def exportable(model: nn.Module, example: Tensor) -> Iterator[list[str]]:
    """Swap the layers the exporter would refuse; put the originals back on exit.

    Yields:
        The names of the swapped layers.
    """
    swaps = _refused_pools(model, example)
    originals = {name: model.get_submodule(name) for name in swaps}
    try:
        for name, new in swaps.items():
            _set(model, name, new.to(example.device))
        yield list(swaps)
    finally:
        for name, old in originals.items():
            _set(model, name, old)


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)
