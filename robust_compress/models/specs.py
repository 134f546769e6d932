"""Model specs: strings that name a model, resolved through a registry.

Spec forms:

- ``builtin:NAME``: a model of this package (``builtin:cnn_small``).
- ``torchvision:NAME``: any torchvision classification model at its native architecture,
  with the dataset's number of classes; its first conv is replaced only when the dataset's
  channels are not 3 (``robust_compress.adapters.torchvision.models``).
- ``timm:NAME``: any timm model (the optional extra ``robust-compress[timm]``), with the
  dataset's classes, channels and, for models that take one, ``img_size``
  (``robust_compress.adapters.timm.models``).
- ``py:package.module:factory``: a factory function of the user's; it is called with
  ``num_classes``, ``in_channels`` and ``input_size`` (height, width) when its signature
  accepts them.

Weights come from a checkpoint file, loaded with ``torch.load(..., weights_only=True)``:
either a plain state dict or a robust-compress checkpoint (a dict with ``state_dict``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from robust_compress.errors import CheckpointError, ModelSpecError, suggest
from robust_compress.registry import Registry
from robust_compress.safe_load import safe_torch_load

BUILTINS: Registry[Callable[..., nn.Module]] = Registry(
    "builtin model", ModelSpecError, builtins="robust_compress.models.resnets"
)
PREFIXES = ("builtin", "torchvision", "timm", "py")


class CNNSmall(nn.Module):
    """A small CNN with BatchNorm for 28x28 inputs (about 190k parameters, 1.2M MACs).

    Three strided 3x3 conv blocks (conv, BatchNorm, ReLU) and a two-layer classifier. Strided
    convolutions instead of max pooling keep it fast on a CPU, and every conv's output
    channels can be pruned. The classifier's last layer is ``head``.
    """

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, width: int = 32, hidden: int = 128
    ):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_conv_bn(in_channels, w), *_conv_bn(w, 2 * w), *_conv_bn(2 * w, 2 * w)
        )
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(2 * w * 16, hidden)
        self.relu = nn.ReLU()
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for images in [0, 1]."""
        x = self.pool(self.features(x)).flatten(1)
        return self.head(self.relu(self.fc(x)))


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    ]


@BUILTINS.register("cnn_small")
def cnn_small(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """The default small CNN (see :class:`CNNSmall`)."""
    return CNNSmall(num_classes, in_channels)


@BUILTINS.register("cnn_tiny")
def cnn_tiny(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A compact CNN of half the width of ``cnn_small`` (about 60k parameters)."""
    return CNNSmall(num_classes, in_channels, width=16)


@BUILTINS.register("cnn_half")
def cnn_half(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """``cnn_small`` with half the channels in every layer (47,610 parameters).

    It is the shape ``cnn_small`` has after 50% structured pruning: the compact baseline that
    the experiments compare compressed models against.
    """
    return CNNSmall(num_classes, in_channels, width=16, hidden=64)


def build_model(
    spec: str,
    num_classes: int = 10,
    in_channels: int = 1,
    *,
    input_size: tuple[int, int] | None = None,
) -> nn.Module:
    """Build a model from a spec string (see the module docstring).

    Args:
        spec: ``builtin:NAME``, ``torchvision:NAME``, ``timm:NAME`` or
            ``py:package.module:factory``.
        num_classes: Number of classes of the dataset.
        in_channels: Number of input channels of the dataset.
        input_size: (height, width) of the dataset's images; timm models that take an
            ``img_size`` (ViT, DeiT) are built for it, ``py:`` factories that take an
            ``input_size`` get it. None: the model's default.

    Returns:
        A freshly initialised model.

    Raises:
        ModelSpecError: The spec is malformed or names nothing that exists.
    """
    prefix, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ModelSpecError(
            f"model spec {spec!r} has no prefix; write builtin:NAME, torchvision:NAME, timm:NAME "
            f"or py:package.module:factory (builtins: {', '.join(BUILTINS.names())})."
        )
    if prefix == "builtin":
        return BUILTINS.get(rest)(num_classes=num_classes, in_channels=in_channels)
    if prefix == "torchvision":
        from robust_compress.adapters.torchvision.models import torchvision_model

        return torchvision_model(rest, num_classes, in_channels)
    if prefix == "timm":
        from robust_compress.adapters.timm.models import timm_model

        return timm_model(rest, num_classes, in_channels, input_size)
    if prefix == "py":
        offered = {"num_classes": num_classes, "in_channels": in_channels}
        if input_size is not None:
            offered["input_size"] = tuple(input_size)
        return _python_factory(rest, offered)
    raise ModelSpecError(f"unknown model spec prefix {prefix!r}." + suggest(prefix, PREFIXES))


def _python_factory(target: str, offered: dict) -> nn.Module:
    """Call the user's factory with those of ``offered``'s arguments its signature takes."""
    module_name, sep, func_name = target.partition(":")
    if not sep:
        raise ModelSpecError(f"py spec {target!r} must be py:package.module:factory.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelSpecError(f"cannot import {module_name!r} for model spec: {exc}.") from None
    factory = getattr(module, func_name, None)
    if not callable(factory):
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ModelSpecError(
            f"{module_name} has no callable {func_name!r}." + suggest(func_name, names)
        )
    params = inspect.signature(factory).parameters
    kwargs = {k: v for k, v in offered.items() if k in params}
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"{target} returned {type(model).__name__}, not a torch nn.Module.")
    return model


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from a checkpoint file, safely (``weights_only=True``).

    Accepts a plain state dict, a dict with a ``state_dict`` (or ``model``) entry, or a
    robust-compress run checkpoint (``RUN/checkpoints/last.pt``: its ``model`` entry holds the
    ``state_dict``), so a later recipe can start from an earlier run's unpruned model.

    Raises:
        CheckpointError: The file is missing, unsafe, or holds no state dict.
    """
    path = Path(path)
    obj = safe_torch_load(path)
    for _ in range(2):  # a run checkpoint nests it twice: {"model": {"state_dict": ...}}
        if isinstance(obj, dict):
            for key in ("state_dict", "model"):
                if isinstance(obj.get(key), dict):
                    obj = obj[key]
                    break
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        raise CheckpointError(
            f"{path} is not a state dict (expected a dict of parameter names to tensors). "
            "Save weights with torch.save(model.state_dict(), path)."
        )
    return obj


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights from ``path`` into ``model`` (strict) and return it.

    Raises:
        CheckpointError: The file is not a fitting state dict for this model.
    """
    state = load_state_dict_file(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{path} does not fit the model: {detail}") from None
    return model


def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())
