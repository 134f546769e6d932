"""Predictors for the forward-pass-only audits (corruptions, randomized smoothing).

A predictor maps images (N, C, H, W) in [0, 1] on the CPU to logits on the CPU, without
autograd: a torch model (through :func:`~robust_compress.audit.attacks.make_target`, which
follows the model's device) or an ONNX Runtime session
(:class:`~robust_compress.adapters.onnxruntime.runtime.OrtPredictor`, the deployed file).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

Predictor = Callable[[Tensor], Tensor]


@contextlib.contextmanager
def as_predictor(subject: nn.Module | Path | Predictor) -> Iterator[Predictor]:
    """A predictor for a torch model, an ONNX file or a predictor (given back as it is).

    A torch model runs in eval mode inside the block; each submodule's mode is restored after.
    """
    from robust_compress.audit.attacks import make_target

    if isinstance(subject, nn.Module):
        modes = [(m, m.training) for m in subject.modules()]
        try:
            yield make_target(subject, None).predict
        finally:
            for module, mode in modes:
                module.training = mode
    elif isinstance(subject, str | Path):
        yield make_target(None, Path(subject)).predict
    else:
        yield subject


def predicted_labels(predict: Predictor, x: Tensor, batch_size: int) -> Tensor:
    """The top-1 class of each image of ``x``, in batches of ``batch_size``."""
    out = torch.empty(len(x), dtype=torch.long, device="cpu")  # labels live on the CPU
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out[i : i + batch_size] = predict(x[i : i + batch_size]).argmax(1).cpu()
    return out
